//! The checked-in OpenAPI descriptions must match the code. Regenerate with
//! `cargo run -- openapi` (or `FLOE_UPDATE_OPENAPI=1 cargo test openapi`).

use crate::common::{Backend, TestApp, repo_path};

fn check(name: &str, doc: utoipa::openapi::OpenApi) {
    let generated = doc.to_yaml().unwrap();
    let path = repo_path(&format!("openapi/{name}"));
    if std::env::var("FLOE_UPDATE_OPENAPI").is_ok() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "openapi/{name} is stale: run `cargo run -- openapi` and commit the result"
    );
}

#[test]
fn management_description_is_fresh() {
    check("management.yaml", floe::api::management_openapi());
}

#[test]
fn catalog_description_is_fresh() {
    let doc = floe::api::catalog_openapi();
    // Every advertised endpoint is described.
    for endpoint in &floe::api::catalog::endpoints() {
        let (method, path) = endpoint.split_once(' ').unwrap();
        let item = doc
            .paths
            .paths
            .get(&format!("/catalog{path}"))
            .unwrap_or_else(|| panic!("{endpoint} is not described"));
        let described = match method {
            "GET" => item.get.is_some(),
            "POST" => item.post.is_some(),
            "HEAD" => item.head.is_some(),
            "DELETE" => item.delete.is_some(),
            _ => false,
        };
        assert!(described, "{endpoint} is not described");
    }
    check("catalog.yaml", doc);
}

#[tokio::test]
async fn api_browser_is_served() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let page = app.get("/docs/").await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("swagger"));
    for doc in ["/docs/management.json", "/docs/catalog.json"] {
        let response = app.get(doc).await;
        assert_eq!(response.status(), 200, "{doc}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body["paths"].as_object().unwrap().len() > 3, "{doc}");
    }
}

#[test]
fn every_route_declares_its_operation() {
    // Every route of both API surfaces is in the operation table with its permission, and
    // every catalog or management operation of the table has its route.
    floe::api::check_operations().unwrap();
}

/// `docs/authz.md` shows, per endpoint, what the authorization model requires; it must match the
/// code (`FLOE_UPDATE_DOCS=1 cargo test authorization_table` rewrites it).
#[test]
fn authorization_table_is_fresh() {
    const START: &str = "<!-- endpoint table: generated from authz::rules -->\n";
    const END: &str = "<!-- end of endpoint table -->";
    let path = repo_path("docs/authz.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let (head, rest) = text
        .split_once(START)
        .expect("docs/authz.md has the table's start marker");
    let (_, tail) = rest
        .split_once(END)
        .expect("docs/authz.md has the table's end marker");
    let expected = format!(
        "{head}{START}{}{END}{tail}",
        floe::authz::rules::endpoint_table()
    );
    if std::env::var("FLOE_UPDATE_DOCS").is_ok() {
        std::fs::write(&path, &expected).unwrap();
    }
    assert!(
        std::fs::read_to_string(&path).unwrap() == expected,
        "docs/authz.md is stale: run `FLOE_UPDATE_DOCS=1 cargo test authorization_table`"
    );
}
