//! Route 53 and Cloudflare change files, applied in file order to fakes that enforce the APIs'
//! rules; the tree client walks the fake zone after every file.

use std::{collections::BTreeSet, path::Path};

use controller::publish::{
    ChangeSet, PublishError, Publisher,
    cloudflare::{CloudflareChangeSetPublisher, ExistingRecord, resolve_ids},
    route53::Route53ChangeSetPublisher,
    zone::TxtZone,
    zone_file::{ZoneFileOptions, ZoneFilePublisher},
};
use node::{crypto::generate_key, enrtree::LinkEntry};
use serde_json::{Value, json};

use crate::files::{
    cloudflare_fake, route53_fake,
    trees::{DOMAIN, Published, assert_whole_tree, new_files, node_records},
};

const ZONE_ID: &str = "023e105f4ecef8ad9ca31a8372d0c353";

/// A fake zone the files are applied to.
trait Fake {
    /// Applies one file as the operator would (after the resolve step, for Cloudflare).
    fn apply_file(&mut self, path: &Path) -> Result<(), String>;
    /// `(name, text)` of every record.
    fn txt(&self) -> Vec<(String, String)>;
}

impl Fake for route53_fake::HostedZone {
    fn apply_file(&mut self, path: &Path) -> Result<(), String> {
        self.apply(&std::fs::read_to_string(path).unwrap())
    }
    fn txt(&self) -> Vec<(String, String)> {
        route53_fake::HostedZone::txt(self)
    }
}

impl Fake for cloudflare_fake::Zone {
    fn apply_file(&mut self, path: &Path) -> Result<(), String> {
        let listed: Vec<ExistingRecord> = serde_json::from_value(self.list()).unwrap();
        let body = resolve_ids(&std::fs::read_to_string(path).unwrap(), &listed)
            .map_err(|e| format!("resolve: {e}"))?;
        self.apply(&body)
    }
    fn txt(&self) -> Vec<(String, String)> {
        cloudflare_fake::Zone::txt(self)
    }
}

/// Feeds every new file in order; after each, the fake holds a whole tree among `trees`, never
/// going back to an older one. Returns the number of files fed.
async fn feed(
    what: &str,
    dir: &Path,
    seen: &mut BTreeSet<std::path::PathBuf>,
    fake: &mut impl Fake,
    url: &LinkEntry,
    trees: &[&Published],
    none_yet: bool,
) -> usize {
    let files = new_files(dir, seen);
    let mut newest = 0;
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        fake.apply_file(file).unwrap_or_else(|e| panic!("{what}: {name} refused: {e}"));
        if let Some(index) =
            assert_whole_tree(&format!("{what}, after {name}"), url, fake.txt(), trees, none_yet)
                .await
        {
            assert!(index >= newest, "{what}: went back to an older tree after {name}");
            newest = index;
        }
    }
    files.len()
}

fn txt_set(fake: &impl Fake) -> BTreeSet<(String, String)> {
    fake.txt().into_iter().map(|(n, t)| (n.trim_end_matches('.').to_ascii_lowercase(), t)).collect()
}

/// The whole life of two trees through one publisher and one fake: several files per step,
/// every step a whole tree, repeats and restarts writing nothing, only the new tree at the end.
async fn two_trees(
    publisher: &dyn Publisher,
    restarted: &dyn Publisher,
    dir: &Path,
    fake: &mut impl Fake,
    kind: &str,
) {
    let key = generate_key();
    let nodes = node_records(420);
    let (first, url) = Published::new(&key, 1, nodes[..220].to_vec());
    let (second, _) = Published::new(&key, 2, nodes[120..].to_vec());
    let trees = [&first, &second];
    let mut seen = BTreeSet::new();

    let set = ChangeSet::between(None, &first.zone);
    publisher.apply(&set).await.unwrap();
    let files = feed("first tree", dir, &mut seen, fake, &url, &trees, true).await;
    assert!(files >= 2, "{kind}: ~250 records should need several batches, got {files}");
    assert_eq!(txt_set(fake), first.txt());
    let names: Vec<String> =
        seen.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names[0], format!("000001-{kind}-{DOMAIN}.json"));

    // Applied again, and again after a restart: nothing new to send.
    publisher.apply(&set).await.unwrap();
    restarted.apply(&set).await.unwrap();
    assert!(new_files(dir, &mut seen).is_empty(), "{kind}: a repeated change set wrote files");

    let set = ChangeSet::between(Some(&first.zone), &second.zone);
    publisher.apply(&set.additions()).await.unwrap();
    let files = feed("additions", dir, &mut seen, fake, &url, &trees, false).await;
    assert!(files >= 2, "{kind}: additions in {files} file(s)");
    assert_whole_tree("after additions", &url, fake.txt(), &[&second], false).await;

    // A crash after the additions: the controller applies them again, then the whole set.
    restarted.apply(&set.additions()).await.unwrap();
    assert!(new_files(dir, &mut seen).is_empty(), "{kind}: repeated additions wrote files");
    publisher.apply(&set).await.unwrap();
    let files = feed("deletions", dir, &mut seen, fake, &url, &[&second], false).await;
    assert!(files >= 1);
    publisher.apply(&set.deletions()).await.unwrap();
    assert!(new_files(dir, &mut seen).is_empty(), "{kind}: repeated deletions wrote files");

    assert_eq!(txt_set(fake), second.txt(), "{kind}: exactly the new tree's records remain");
}

#[tokio::test]
async fn route53_files_move_a_zone_between_trees_and_never_break_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("route53");
    let publisher =
        Route53ChangeSetPublisher::new(out.clone(), Some("Z0123456789ABCDEFGHIJ".into())).unwrap();
    let restarted = Route53ChangeSetPublisher::new(out.clone(), None).unwrap();
    let mut zone = route53_fake::HostedZone::new(DOMAIN);
    two_trees(&publisher, &restarted, &out, &mut zone, "route53").await;

    // The files are the API's shape: the comment names the zone, names are absolute.
    let first: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join(format!("000001-route53-{DOMAIN}.json"))).unwrap(),
    )
    .unwrap();
    assert!(first["Comment"].as_str().unwrap().contains("Z0123456789ABCDEFGHIJ"), "{first}");
    let change = &first["Changes"][0];
    assert_eq!(change["Action"], "CREATE");
    assert!(
        change["ResourceRecordSet"]["Name"].as_str().unwrap().ends_with(&format!(".{DOMAIN}."))
    );
    assert_eq!(change["ResourceRecordSet"]["Type"], "TXT");
}

#[tokio::test]
async fn cloudflare_files_move_a_zone_between_trees_and_never_break_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cloudflare");
    let publisher = CloudflareChangeSetPublisher::new(out.clone(), ZONE_ID).unwrap();
    let restarted = CloudflareChangeSetPublisher::new(out.clone(), ZONE_ID).unwrap();
    let mut zone = cloudflare_fake::Zone::new(DOMAIN);
    two_trees(&publisher, &restarted, &out, &mut zone, "cloudflare").await;

    // Each file holds one kind of change; posts come before the patch, the patch before deletes.
    let mut kinds = Vec::new();
    for file in new_files(&out, &mut BTreeSet::new()) {
        let body: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let keys: Vec<String> = body.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys.len(), 1, "{}: {keys:?}", file.display());
        kinds.push(keys[0].clone());
    }
    kinds.dedup();
    assert_eq!(kinds, ["posts", "patches", "deletes"], "files of one kind, in this order");
}

#[tokio::test]
async fn an_unresolved_cloudflare_file_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let publisher = CloudflareChangeSetPublisher::new(dir.path().to_owned(), ZONE_ID).unwrap();
    let mut old = TxtZone::new(DOMAIN, 1);
    old.push(DOMAIN, 60, "root1");
    old.push(&format!("a.{DOMAIN}"), 86_400, "a");
    let mut new = TxtZone::new(DOMAIN, 2);
    new.push(DOMAIN, 60, "root2");
    let set = ChangeSet::between(Some(&old), &new);
    publisher.apply(&ChangeSet::between(None, &old)).await.unwrap();
    publisher.apply(&set).await.unwrap();
    let files = new_files(dir.path(), &mut BTreeSet::new());
    assert_eq!(files.len(), 3, "posts, patches, deletes: {files:?}");

    let mut zone = cloudflare_fake::Zone::new(DOMAIN);
    zone.apply(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    let before = zone.records.clone();
    for file in &files[1..] {
        let error = zone.apply(&std::fs::read_to_string(file).unwrap()).unwrap_err();
        // Deletes name the record instead of its id, patches lack the id: refused either way.
        assert!(error.contains("id is required") || error.contains("unknown field"), "{error}");
        assert_eq!(zone.records, before, "nothing applied");
    }
}

#[tokio::test]
async fn the_fakes_refuse_what_the_apis_refuse() {
    // Route 53.
    let mut zone = route53_fake::HostedZone::new(DOMAIN);
    let set = |action: &str, name: &str, ttl: u64, values: &[&str]| {
        json!({"Action": action, "ResourceRecordSet": {"Name": name, "Type": "TXT", "TTL": ttl,
            "ResourceRecords": values.iter().map(|v| json!({"Value": v})).collect::<Vec<_>>()}})
    };
    let batch = |changes: Vec<Value>| json!({"Comment": "test", "Changes": changes}).to_string();
    let a = format!("a.{DOMAIN}.");
    zone.apply(&batch(vec![set("CREATE", &a, 60, &["\"one\""])])).unwrap();
    for (body, expect) in [
        (
            batch(vec![
                set("CREATE", &format!("b.{DOMAIN}"), 60, &["\"b\""]),
                set("CREATE", &a, 60, &["\"one\""]),
            ]),
            "already exists",
        ),
        (batch(vec![set("DELETE", &a, 61, &["\"one\""])]), "do not match"),
        (batch(vec![set("DELETE", &a, 60, &["\"two\""])]), "do not match"),
        (batch(vec![set("DELETE", &format!("gone.{DOMAIN}"), 60, &["\"x\""])]), "not found"),
        (batch(vec![set("UPSERT", &a, 60, &["unquoted"])]), "InvalidTXTRDATA"),
        (
            batch(vec![set("UPSERT", &a, 60, &[&format!("\"{}\"", "x".repeat(256))])]),
            "InvalidTXTRDATA",
        ),
        (batch(vec![set("UPSERT", "a.other.test.", 60, &["\"x\""])]), "not in the zone"),
        (
            batch(vec![set("UPSERT", &a, 60, &["\"x\""]), set("DELETE", &a, 60, &["\"x\""])]),
            "twice",
        ),
        (batch(vec![]), "non-empty"),
        (
            json!({"Changes": [set("UPSERT", &a, 60, &["\"x\""])], "Extra": 1}).to_string(),
            "unknown field",
        ),
        (
            // 501 UPSERTs count as 1,002 records.
            batch(
                (0..501)
                    .map(|i| set("UPSERT", &format!("n{i}.{DOMAIN}"), 60, &["\"x\""]))
                    .collect(),
            ),
            "ResourceRecord elements",
        ),
        (
            // 100 values of 330 characters: 33,000 characters.
            batch(
                (0..100)
                    .map(|i| {
                        set(
                            "CREATE",
                            &format!("n{i}.{DOMAIN}"),
                            60,
                            &[&format!("\"{}\" \"{}\"", "x".repeat(200), "y".repeat(125))],
                        )
                    })
                    .collect(),
            ),
            "characters of values",
        ),
    ] {
        let error = zone.apply(&body).unwrap_err();
        assert!(error.contains(expect), "expected {expect:?}: {error}");
    }
    assert_eq!(zone.sets.len(), 1, "refused batches changed nothing: {:?}", zone.sets);
    zone.apply(&batch(vec![set("DELETE", &a, 60, &["\"one\""])])).unwrap();
    assert!(zone.sets.is_empty());

    // Cloudflare.
    let mut zone = cloudflare_fake::Zone::new(DOMAIN);
    let post = |name: &str, content: &str, ttl: u64| json!({"name": name, "type": "TXT", "content": content, "ttl": ttl});
    zone.apply(&json!({"posts": [post(DOMAIN, "\"root\"", 60)]}).to_string()).unwrap();
    let id = zone.records.keys().next().unwrap().clone();
    for (body, expect) in [
        (
            json!({"posts": [post(&format!("b.{DOMAIN}"), "\"b\"", 60), post(DOMAIN, "\"root\"", 60)]}),
            "identical record",
        ),
        (
            json!({"posts": [post(&format!("b.{DOMAIN}"), &format!("\"{}\"", "x".repeat(256)), 60)]}),
            "TXT content",
        ),
        (json!({"posts": [post(&format!("b.{DOMAIN}"), &"x".repeat(2_049), 60)]}), "2048"),
        (json!({"posts": [post(&format!("b.{DOMAIN}"), "\"b\"", 30)]}), "TTL"),
        (json!({"posts": [post("b.other.test", "\"b\"", 60)]}), "not in the zone"),
        (json!({"deletes": [{"id": "00000000000000000000000000000bad"}]}), "not found"),
        (
            json!({"deletes": [{"name": DOMAIN, "type": "TXT", "content": "\"root\""}]}),
            "unknown field",
        ),
        (json!({"patches": [{"content": "\"x\""}]}), "id is required"),
        (
            json!({"posts": [post(&format!("c.{DOMAIN}"), "\"c\"", 60)], "deletes": [{"id": id}, {"id": id}]}),
            "not found",
        ),
        (
            json!({"posts": (0..201).map(|i| post(&format!("n{i}.{DOMAIN}"), "\"x\"", 60)).collect::<Vec<_>>()}),
            "200",
        ),
        (json!({"creates": []}), "unknown field"),
    ] {
        let error = zone.apply(&body.to_string()).unwrap_err();
        assert!(error.contains(expect), "expected {expect:?}: {error}");
    }
    assert_eq!(zone.records.len(), 1, "refused batches changed nothing");
    // Deletes run first whatever the order written: posting the record being deleted works.
    zone.apply(
        &json!({"posts": [post(DOMAIN, "\"root\"", 60)], "deletes": [{"id": id}]}).to_string(),
    )
    .unwrap();
    assert_eq!(zone.txt(), [(DOMAIN.to_owned(), "root".to_owned())]);
    assert!(!zone.records.contains_key(&id), "a new record replaced the deleted one");
}

#[tokio::test]
async fn an_output_directory_that_cannot_be_written_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let mut zone = TxtZone::new(DOMAIN, 1);
    zone.push(DOMAIN, 60, "root");
    let set = ChangeSet::between(None, &zone);

    let check = |error: PublishError, under: &Path| match error {
        PublishError::Io { path, .. } => assert!(path.starts_with(under), "{}", path.display()),
        other => panic!("expected Io, got {other:?}"),
    };
    let out = blocker.join("out");
    let publishers: Vec<Box<dyn Publisher>> = vec![
        Box::new(ZoneFilePublisher::new(out.clone(), ZoneFileOptions::default()).unwrap()),
        Box::new(Route53ChangeSetPublisher::new(out.clone(), None).unwrap()),
        Box::new(CloudflareChangeSetPublisher::new(out.clone(), ZONE_ID).unwrap()),
    ];
    for publisher in &publishers {
        check(publisher.apply(&set).await.unwrap_err(), &blocker);
    }

    // A read-only directory (permissions do not bind root, so only checked for other users).
    #[cfg(unix)]
    if !crate::files::trees::running_as_root(dir.path()) {
        use std::os::unix::fs::PermissionsExt;
        let read_only = dir.path().join("read-only");
        std::fs::create_dir(&read_only).unwrap();
        std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o555)).unwrap();
        let publishers: Vec<Box<dyn Publisher>> = vec![
            Box::new(
                ZoneFilePublisher::new(read_only.clone(), ZoneFileOptions::default()).unwrap(),
            ),
            Box::new(Route53ChangeSetPublisher::new(read_only.clone(), None).unwrap()),
            Box::new(CloudflareChangeSetPublisher::new(read_only.clone(), ZONE_ID).unwrap()),
        ];
        for publisher in &publishers {
            check(publisher.apply(&set).await.unwrap_err(), &read_only);
        }
        assert_eq!(std::fs::read_dir(&read_only).unwrap().count(), 0);
    }
}

#[tokio::test]
async fn records_cloudflare_cannot_take_are_invalid_before_any_file_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let cloudflare = CloudflareChangeSetPublisher::new(dir.path().to_owned(), ZONE_ID).unwrap();
    let mut zone = TxtZone::new(DOMAIN, 1);
    zone.push(DOMAIN, 30, "root");
    let error = cloudflare.apply(&ChangeSet::between(None, &zone)).await.unwrap_err();
    assert!(
        matches!(&error, PublishError::Invalid { message, .. } if message.contains("TTL")),
        "{error}"
    );
    let mut zone = TxtZone::new(DOMAIN, 1);
    zone.push(DOMAIN, 60, "x".repeat(2_100));
    let error = cloudflare.apply(&ChangeSet::between(None, &zone)).await.unwrap_err();
    assert!(
        matches!(&error, PublishError::Invalid { message, .. } if message.contains("2048")),
        "{error}"
    );

    let route53 = Route53ChangeSetPublisher::new(dir.path().to_owned(), None).unwrap();
    let mut zone = TxtZone::new(DOMAIN, 1);
    zone.push(DOMAIN, 60, "x".repeat(4_000));
    let error = route53.apply(&ChangeSet::between(None, &zone)).await.unwrap_err();
    assert!(
        matches!(&error, PublishError::Invalid { message, .. } if message.contains("4000")),
        "{error}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no file, no state");
}
