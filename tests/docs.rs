//! `/docs` renders in a real headless browser on a machine with no internet access: every
//! asset is served by the gateway itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use std::process::Command;

use common::{Db, TestApp};

const CHROMIUM: &str = "/usr/bin/chromium";

#[tokio::test]
async fn docs_render_offline_from_local_assets() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let html = app.get("/docs/", None).await.text().await.unwrap();
    let mut assets = 0;
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            let target = part.split('"').next().unwrap();
            assert!(!target.contains("://") && !target.starts_with("//"), "external asset {target}");
            let response = app.get(&format!("/docs/{}", target.trim_start_matches("./")), None).await;
            assert_eq!(response.status(), 200, "asset {target}");
            assets += 1;
        }
    }
    assert!(assets >= 4, "{html}");

    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{}",
        common::needs(&format!("{CHROMIUM} (the apt package chromium) to render /docs"))
    );
    let profile = tempfile::tempdir().unwrap();
    let url = app.url("/docs/");
    let dom = tokio::task::spawn_blocking(move || {
        Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--virtual-time-budget=10000",
                &format!("--user-data-dir={}", profile.path().display()),
                "--dump-dom",
                &url,
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    // Swagger UI has fetched /openapi.json and rendered operations from it.
    for needle in ["speechgate", "/v1/usage", "/admin/v1/keys", "opblock"] {
        assert!(dom.contains(needle), "rendered page lacks {needle:?}:\n{}", &dom[..dom.len().min(3000)]);
    }
    app.stop().await;
}
