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
    let page = app.get("/docs/", None).await;
    // The page may load only its own assets, may not be framed, and is not sniffed.
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("http:") && !csp.contains("https:") && !csp.contains("unsafe-eval"), "{csp}");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let html = page.text().await.unwrap();
    // A credential pasted into the page is not kept in the browser's storage.
    let init = app.get("/docs/swagger-initializer.js", None).await.text().await.unwrap();
    assert!(init.contains(r#""persistAuthorization": false"#), "{init}");
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
    // Swagger UI has fetched /openapi.json and rendered operations from it, under its CSP.
    for needle in ["speechgate", "/v1/usage", "/admin/v1/keys", "opblock"] {
        assert!(dom.contains(needle), "rendered page lacks {needle:?}:\n{}", &dom[..dom.len().min(3000)]);
    }
    app.stop().await;
}
