//! The file publishers end to end: zone files checked by BIND's own parser, and Route 53 and
//! Cloudflare change files fed in order to fakes that apply them by those APIs' rules. After
//! every file the tree client walks the records: the old tree or the new one, never a broken
//! one.

mod cloud;
mod cloudflare_fake;
mod route53_fake;
mod trees;
mod zone_file;
