//! Publication as zone files: one file per zone, `<dir>/<origin>.zone`, for BIND, Knot, NSD or
//! anything else that loads zone files (`rndc reload <zone>` after each publication, or a
//! server that watches the file).
//!
//! Each [`Publisher::apply`] reads the zone's file, applies the change set to its records, and
//! replaces the file whole (a temporary file in the same directory, flushed, renamed over the
//! old one, the directory flushed), so a server reloading at any moment reads the old zone or
//! the new one. Applying a change set that is already in the file changes nothing, not even the
//! serial.
//!
//! With [`Soa`] options the file is a whole zone: SOA and NS records at the apex, then the TXT
//! records. Without, it is a fragment of TXT records for the operator's own zone file to
//! `$INCLUDE`. The SOA serial starts at the change set's serial (the tree's sequence number) and
//! increases with every rewrite: the additions and the deletions of one change set carry the
//! same serial, so the second rewrite moves one past it (RFC 1982 arithmetic).
//!
//! The file is ours: it is read back with a parser for exactly what we write (the
//! `$ORIGIN` line, SOA, NS and TXT records with relative owners, `;` comments). A file it cannot
//! read is reported with its line number and left untouched, never overwritten. One publisher
//! process per directory: applies within a process are serialised, across processes they are
//! not.

use std::{
    fmt::Write as _,
    io,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use futures::future::BoxFuture;
use node::enrtree::zone::quote_txt;

use super::{
    ChangeSet, PublishError, Publisher, files,
    record_set::{RecordSet, check_change_set},
    zone::{TxtRecord, is_plain_name, relative_to, unquote_txt},
};

/// Largest zone file we read back (a tree of 100,000 records is ~45 MB).
pub const MAX_ZONE_FILE: u64 = 64 * 1024 * 1024;

/// The SOA and NS records of a zone file that is a whole zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Soa {
    /// The zone's name servers, as NS records at the apex; the first is the SOA's primary
    /// (MNAME).
    pub name_servers: Vec<String>,
    /// The responsible mailbox in domain form (`hostmaster.example.org`).
    pub hostmaster: String,
    /// TTL of the SOA and NS records. Default: 3600 s.
    pub ttl: u32,
    /// SOA refresh. Default: 3600 s.
    pub refresh: u32,
    /// SOA retry. Default: 600 s.
    pub retry: u32,
    /// SOA expire. Default: 1,209,600 s (two weeks).
    pub expire: u32,
    /// SOA minimum: how long resolvers cache "no such name". Short, so a client that asks for a
    /// leaf just before it is published asks again soon. Default: 60 s.
    pub minimum: u32,
}

impl Soa {
    /// An SOA with the default timers.
    pub fn new(name_servers: Vec<String>, hostmaster: &str) -> Self {
        Self {
            name_servers,
            hostmaster: hostmaster.to_owned(),
            ttl: 3600,
            refresh: 3600,
            retry: 600,
            expire: 1_209_600,
            minimum: 60,
        }
    }
}

/// How the zone files are written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZoneFileOptions {
    /// `Some`: every file is a whole zone with this SOA and these NS records. `None` (the
    /// default): files hold the TXT records only, for `$INCLUDE`.
    pub soa: Option<Soa>,
}

/// A bad zone file publisher configuration.
#[derive(Debug, thiserror::Error)]
pub enum ZoneFileConfigError {
    /// An SOA needs at least one name server.
    #[error("the SOA needs at least one name server")]
    NoNameServer,
    /// A name server or the hostmaster is not a plain DNS name.
    #[error("{0:?} is not a plain DNS name")]
    Name(String),
}

/// Why a zone file could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZoneFileError {
    /// A line that is not one we write.
    #[error("line {line}: {message}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// No `$ORIGIN` line naming the zone.
    #[error("no $ORIGIN {0}. line")]
    NoOrigin(String),
    /// Not UTF-8 text.
    #[error("not UTF-8 text")]
    NotText,
}

/// What a zone file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedZoneFile {
    /// The SOA serial, if the file is a whole zone.
    pub serial: Option<u32>,
    /// The TXT records, in file order, with full names.
    pub records: Vec<TxtRecord>,
}

/// Writes and rewrites one zone file per zone in a directory.
#[derive(Debug, Clone)]
pub struct ZoneFilePublisher {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    options: ZoneFileOptions,
    /// One rewrite at a time: two overlapping applies would each start from the same file.
    lock: Mutex<()>,
}

impl ZoneFilePublisher {
    /// A publisher writing into `dir` (created on first use). Checks the SOA names.
    pub fn new(dir: PathBuf, options: ZoneFileOptions) -> Result<Self, ZoneFileConfigError> {
        if let Some(soa) = &options.soa {
            if soa.name_servers.is_empty() {
                return Err(ZoneFileConfigError::NoNameServer);
            }
            for name in soa.name_servers.iter().chain([&soa.hostmaster]) {
                if !is_plain_name(name.trim_end_matches('.')) {
                    return Err(ZoneFileConfigError::Name(name.clone()));
                }
            }
        }
        Ok(Self { inner: Arc::new(Inner { dir, options, lock: Mutex::new(()) }) })
    }

    /// The file of the zone `origin`: `<dir>/<origin>.zone`, lower case.
    pub fn path(&self, origin: &str) -> PathBuf {
        self.inner.path(origin)
    }

    /// Reads back the zone file of `origin`; `None` if there is none yet.
    pub fn read(&self, origin: &str) -> Result<Option<ParsedZoneFile>, PublishError> {
        self.inner.read(origin.trim_end_matches('.'))
    }
}

impl Inner {
    fn path(&self, origin: &str) -> PathBuf {
        self.dir.join(format!("{}.zone", origin.trim_end_matches('.').to_ascii_lowercase()))
    }

    fn read(&self, origin: &str) -> Result<Option<ParsedZoneFile>, PublishError> {
        Ok(self.load(origin)?.map(|(_, parsed)| parsed))
    }

    /// The zone file's bytes and what they hold; `None` if there is no file.
    fn load(&self, origin: &str) -> Result<Option<(Vec<u8>, ParsedZoneFile)>, PublishError> {
        let path = self.path(origin);
        let Some(bytes) = files::read_bounded(&path, MAX_ZONE_FILE)? else {
            return Ok(None);
        };
        let parsed = std::str::from_utf8(&bytes)
            .map_err(|_| ZoneFileError::NotText)
            .and_then(|text| parse_zone_file(text, origin))
            .map_err(|e| files::io_error(&path)(io::Error::new(io::ErrorKind::InvalidData, e)))?;
        Ok(Some((bytes, parsed)))
    }

    fn apply(&self, changes: &ChangeSet) -> Result<(), PublishError> {
        let target = || format!("zone-file:{}", self.dir.display());
        check_change_set(changes)
            .map_err(|message| PublishError::Invalid { target: target(), message })?;
        let origin = changes.origin.trim_end_matches('.');
        let path = self.path(origin);
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        files::ensure_dir(&self.dir)?;

        // A file we cannot read stops here, before anything is written over it.
        let current = self.load(origin)?;
        let held = RecordSet::from_records(
            current.as_ref().map(|(_, c)| c.records.clone()).unwrap_or_default(),
        );
        let (ops, after) = held
            .plan(changes)
            .map_err(|message| PublishError::Invalid { target: target(), message })?;
        if current.is_none() && ops.is_empty() {
            return Ok(());
        }
        let current_serial = current.as_ref().and_then(|(_, c)| c.serial);
        if let Some((bytes, _)) = &current {
            let same =
                render(origin, current_serial.unwrap_or(changes.serial), &after, &self.options);
            if same.as_bytes() == bytes.as_slice() {
                tracing::debug!(target: "ctl::zone_file", path = %path.display(), "already up to date");
                return Ok(());
            }
        }
        let serial = match current_serial {
            Some(current) => next_serial(current, changes.serial),
            None => changes.serial,
        };
        files::replace(&path, render(origin, serial, &after, &self.options).as_bytes())?;
        tracing::info!(target: "ctl::zone_file", path = %path.display(), serial,
            changes = ops.len(), records = after.len(), "zone file written");
        Ok(())
    }
}

impl Publisher for ZoneFilePublisher {
    fn name(&self) -> String {
        format!("zone-file:{}", self.inner.dir.display())
    }

    fn apply<'a>(&'a self, changes: &'a ChangeSet) -> BoxFuture<'a, Result<(), PublishError>> {
        let (inner, changes) = (self.inner.clone(), changes.clone());
        files::in_background(self.inner.dir.clone(), move || inner.apply(&changes))
    }
}

/// The next SOA serial after `current` when the change set asks for `wanted`: `wanted` if it is
/// ahead of `current` in RFC 1982 serial arithmetic, otherwise one more than `current`.
fn next_serial(current: u32, wanted: u32) -> u32 {
    let ahead = wanted != current && wanted.wrapping_sub(current) < (1 << 31);
    if ahead { wanted } else { current.wrapping_add(1) }
}

/// The zone file text: header comment, `$ORIGIN`, SOA and NS if configured, the root's TXT
/// record, then every other record by name. Owners are relative (`@` for the apex).
fn render(origin: &str, serial: u32, records: &RecordSet, options: &ZoneFileOptions) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "; EIP-1459 tree zone {origin}, written by wakufleet. The whole file is replaced on every \
         publication: edits here are lost."
    );
    let _ = writeln!(out, "$ORIGIN {origin}.");
    if let Some(soa) = &options.soa {
        let dotted = |name: &str| format!("{}.", name.trim_end_matches('.'));
        let _ = writeln!(
            out,
            "@\t{}\tIN\tSOA\t{} {} {serial} {} {} {} {}",
            soa.ttl,
            dotted(&soa.name_servers[0]),
            dotted(&soa.hostmaster),
            soa.refresh,
            soa.retry,
            soa.expire,
            soa.minimum
        );
        for ns in &soa.name_servers {
            let _ = writeln!(out, "@\t{}\tIN\tNS\t{}", soa.ttl, dotted(ns));
        }
    }
    let mut lines: Vec<(&str, &TxtRecord)> = records
        .records()
        .filter_map(|r| relative_to(&r.name, origin).map(|owner| (owner, r)))
        .collect();
    // The apex first (an empty relative name sorts first), the rest in name order.
    lines.sort_by_key(|(owner, _)| owner.to_ascii_lowercase());
    for (owner, record) in lines {
        let owner = if owner.is_empty() { "@" } else { owner };
        let _ = writeln!(out, "{owner}\t{}\tIN\tTXT\t{}", record.ttl, quote_txt(&record.text));
    }
    out
}

/// Reads a zone file written for `origin` (without trailing dot). Accepts what we write and
/// nothing else: `;` comments and blank lines, one `$ORIGIN <origin>.` before any record, and
/// records `<owner> <ttl> IN <type> <data>` with `@` or a relative owner, of type SOA (at the
/// apex, once), NS (at the apex) or TXT (quoted strings, one record per name).
pub fn parse_zone_file(text: &str, origin: &str) -> Result<ParsedZoneFile, ZoneFileError> {
    let origin = origin.trim_end_matches('.');
    let mut seen_origin = false;
    let mut serial = None;
    let mut records: Vec<TxtRecord> = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (index, line) in text.lines().enumerate() {
        let fail = |message: String| ZoneFileError::Line { line: index + 1, message };
        let line = line.trim_end();
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("$ORIGIN") {
            let named = rest.trim().strip_suffix('.').unwrap_or_default();
            if seen_origin || !named.eq_ignore_ascii_case(origin) {
                return Err(fail(format!("expected one $ORIGIN {origin}., found {line:?}")));
            }
            seen_origin = true;
            continue;
        }
        if !seen_origin {
            return Err(ZoneFileError::NoOrigin(origin.to_owned()));
        }
        let (owner, rest) = field(line);
        let (ttl, rest) = field(rest);
        let (class, rest) = field(rest);
        let (kind, data) = field(rest);
        let name = match owner {
            "@" => origin.to_owned(),
            relative if is_plain_name(relative) => format!("{relative}.{origin}"),
            _ => return Err(fail(format!("owner {owner:?} is not @ or a relative name"))),
        };
        let ttl: u32 = ttl.parse().map_err(|_| fail(format!("TTL {ttl:?} is not a number")))?;
        if class != "IN" {
            return Err(fail(format!("class {class:?}, expected IN")));
        }
        match kind {
            "SOA" | "NS" if owner != "@" => {
                return Err(fail(format!("{kind} record below the apex")));
            }
            "SOA" => {
                let fields: Vec<&str> = data.split_ascii_whitespace().collect();
                if serial.is_some() || fields.len() != 7 {
                    return Err(fail("expected one SOA with 7 fields".into()));
                }
                serial =
                    Some(fields[2].parse().map_err(|_| {
                        fail(format!("SOA serial {:?} is not a number", fields[2]))
                    })?);
            }
            // Written from the options on every rewrite, so not kept.
            "NS" => {}
            "TXT" => {
                let text = unquote_txt(data).map_err(|e| fail(format!("TXT value: {e}")))?;
                if !names.insert(name.to_ascii_lowercase()) {
                    return Err(fail(format!("a second TXT record at {name}")));
                }
                records.push(TxtRecord { name, ttl, text });
            }
            other => return Err(fail(format!("record type {other:?} is not one we write"))),
        }
    }
    if !seen_origin {
        return Err(ZoneFileError::NoOrigin(origin.to_owned()));
    }
    Ok(ParsedZoneFile { serial, records })
}

/// The first blank-separated field of `line` and the rest, with leading blanks removed.
fn field(line: &str) -> (&str, &str) {
    let line = line.trim_start_matches([' ', '\t']);
    match line.find([' ', '\t']) {
        Some(end) => (&line[..end], line[end..].trim_start_matches([' ', '\t'])),
        None => (line, ""),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn serials_move_forward_in_rfc_1982_arithmetic() {
        assert_eq!(next_serial(5, 9), 9);
        assert_eq!(next_serial(9, 9), 10, "same serial again: one past it");
        assert_eq!(next_serial(9, 3), 10, "an older serial never goes back");
        assert_eq!(next_serial(u32::MAX, 2), 2, "2 is ahead of 2^32-1 across the wrap");
        assert_eq!(next_serial(u32::MAX, u32::MAX), 0);
    }

    #[test]
    fn what_is_rendered_parses_back() {
        let records = RecordSet::from_records([
            TxtRecord { name: "fleet.test".into(), ttl: 60, text: "root".into() },
            TxtRecord { name: "B.fleet.test".into(), ttl: 600, text: "x".repeat(300) },
            TxtRecord { name: "a.fleet.test".into(), ttl: 600, text: "q\"\\".into() },
        ]);
        let options = ZoneFileOptions {
            soa: Some(Soa::new(
                vec!["ns1.example.net".into(), "ns2.example.net.".into()],
                "hostmaster.example.net",
            )),
        };
        let text = render("fleet.test", 42, &records, &options);
        let parsed = parse_zone_file(&text, "fleet.test.").unwrap();
        assert_eq!(parsed.serial, Some(42));
        let names: Vec<&str> = parsed.records.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["fleet.test", "a.fleet.test", "B.fleet.test"], "apex first, by name");
        assert_eq!(RecordSet::from_records(parsed.records), records);
        assert!(text.contains("@\t3600\tIN\tNS\tns2.example.net.\n"), "{text}");

        let fragment = render("fleet.test", 42, &records, &ZoneFileOptions::default());
        assert!(!fragment.contains("SOA"));
        assert_eq!(parse_zone_file(&fragment, "fleet.test").unwrap().serial, None);
    }

    #[test]
    fn files_we_did_not_write_are_refused_with_their_line() {
        let good = "$ORIGIN fleet.test.\n@\t60\tIN\tTXT\t\"root\"\n";
        assert!(parse_zone_file(good, "fleet.test").is_ok());
        for (text, line, expect) in [
            ("@ 60 IN TXT \"root\"\n", 0, "no $ORIGIN"),
            ("$ORIGIN other.test.\n", 1, "$ORIGIN"),
            ("$ORIGIN fleet.test.\n$ORIGIN fleet.test.\n", 2, "$ORIGIN"),
            ("$ORIGIN fleet.test.\nA 60 IN MX 10 mail\n", 2, "MX"),
            ("$ORIGIN fleet.test.\nA sixty IN TXT \"a\"\n", 2, "TTL"),
            ("$ORIGIN fleet.test.\nA 60 CH TXT \"a\"\n", 2, "class"),
            ("$ORIGIN fleet.test.\nA 60 IN TXT unquoted\n", 2, "TXT value"),
            ("$ORIGIN fleet.test.\nA 60 IN TXT \"open\n", 2, "unterminated"),
            ("$ORIGIN fleet.test.\nA 60 IN TXT \"a\"\nA 60 IN TXT \"b\"\n", 3, "second TXT"),
            ("$ORIGIN fleet.test.\nx.other. 60 IN TXT \"a\"\n", 2, "owner"),
            ("$ORIGIN fleet.test.\nA 60 IN SOA a. b. 1 2 3 4 5\n", 2, "below the apex"),
            ("$ORIGIN fleet.test.\n@ 60 IN SOA a. b. 1 2 3\n", 2, "7 fields"),
        ] {
            let error = parse_zone_file(text, "fleet.test").unwrap_err();
            if line > 0 {
                assert!(
                    matches!(&error, ZoneFileError::Line { line: l, .. } if *l == line),
                    "{error:?}"
                );
            }
            assert!(error.to_string().contains(expect), "{text:?}: {error}");
        }
    }

    #[test]
    fn soa_names_are_checked() {
        let bad = ZoneFileOptions { soa: Some(Soa::new(vec![], "h.example")) };
        assert!(matches!(
            ZoneFilePublisher::new("z".into(), bad),
            Err(ZoneFileConfigError::NoNameServer)
        ));
        let bad = ZoneFileOptions { soa: Some(Soa::new(vec!["ns 1".into()], "h.example")) };
        assert!(matches!(
            ZoneFilePublisher::new("z".into(), bad),
            Err(ZoneFileConfigError::Name(_))
        ));
        let bad =
            ZoneFileOptions { soa: Some(Soa::new(vec!["ns1.example".into()], "me@example.org")) };
        assert!(matches!(
            ZoneFilePublisher::new("z".into(), bad),
            Err(ZoneFileConfigError::Name(_))
        ));
    }
}
