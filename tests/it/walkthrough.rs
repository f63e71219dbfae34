//! The README's "A fleet by hand", run exactly as written (issue: the operator's first day):
//! the block between `walkthrough:begin` and `walkthrough:end` is extracted and run with bash,
//! against a fresh Postgres database and free ports, with `wakufleet` on the PATH. A README
//! step the program no longer does fails this test.

use std::{path::Path, time::Duration};

fn walkthrough() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let begin = readme.find("<!-- walkthrough:begin -->").expect("the README's walkthrough");
    let end = readme.find("<!-- walkthrough:end -->").unwrap();
    let block = &readme[begin..end];
    let code = block.split_once("```sh\n").unwrap().1;
    code.rsplit_once("```").unwrap().0.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walkthrough_runs_as_written() {
    let database = node::sql::TestDatabase::create().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("walkthrough.sh"), walkthrough()).unwrap();
    // Five blocks of three ports from a random base between the ports other tests are handed
    // (node::free_port) and the ephemeral range, so neither collides; DNS and API after them.
    let port_base = node::free_port::CEILING + (node::free_port::free_port() % 10_000) / 10 * 10;
    let dns = port_base + 500;
    let bin = Path::new(env!("CARGO_BIN_EXE_wakufleet")).parent().unwrap().to_owned();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let run = tokio::process::Command::new("bash")
        .arg("walkthrough.sh")
        .current_dir(dir.path())
        .env("PATH", path)
        .env("WAKUFLEET_DATABASE_URL", database.url())
        .env("API", format!("127.0.0.1:{}", port_base + 501))
        .env("DNS", format!("127.0.0.1:{dns}"))
        .env("PORT_BASE", port_base.to_string())
        .env_remove("WAKUFLEET_ADMIN_TOKEN")
        .env_remove("WAKUFLEET_TOKEN")
        .kill_on_drop(true)
        .output();
    let output =
        tokio::time::timeout(Duration::from_secs(300), run).await.expect("it ends").unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let logs = ["fleet/controller.log", "fleet/node-1/agent.log"]
        .map(|f| std::fs::read_to_string(dir.path().join(f)).unwrap_or_default())
        .join("\n---\n");
    let context = format!("stdout:\n{stdout}\nstderr:\n{stderr}\nlogs:\n{logs}");
    assert!(output.status.success(), "{context}");
    for line in [
        "boot tree: 3 nodes at enrtree://",
        "all tree: signed, enrtree://",
        "boot tree after stopping node-3: 2 nodes",
        "decommissioned node-3: 2 nodes enrolled",
    ] {
        assert!(stdout.contains(line), "missing {line:?}\n{context}");
    }
}
