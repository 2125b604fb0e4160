//! `/management/v1/roles` and `/management/v1/grants` over HTTP: roles, nested assignments, and
//! grants checked against the authorization model.

use serde_json::{Value, json};

use crate::common::{Backend, TestApp, expect_error};

on_both_backends!(roles_are_named_listed_and_nested, grants_follow_the_model,);

async fn roles_are_named_listed_and_nested(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let create = |name: &str| json!({"name": name, "description": format!("the {name}")});
    let eng: Value = {
        let response = app.post("/management/v1/roles", &create("engineers")).await;
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    };
    let ops: Value = app
        .post("/management/v1/roles", &create("ops"))
        .await
        .json()
        .await
        .unwrap();
    expect_error(
        app.post("/management/v1/roles", &create("engineers")).await,
        409,
    )
    .await;
    for bad in ["", "two words", "semi;colon", &"x".repeat(129)] {
        expect_error(app.post("/management/v1/roles", &create(bad)).await, 400).await;
    }
    expect_error(
        app.post("/management/v1/roles", &json!({"name": "x", "members": []}))
            .await,
        400,
    )
    .await;

    let names = |body: &Value| -> Vec<String> {
        body["roles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    let all: Value = app.get("/management/v1/roles").await.json().await.unwrap();
    assert_eq!(names(&all), ["engineers", "ops"]);
    let first: Value = app
        .get("/management/v1/roles?pageSize=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(names(&first), ["engineers"]);
    let token = first["next-page-token"].as_str().unwrap();
    let rest: Value = app
        .get(&format!(
            "/management/v1/roles?pageSize=1&pageToken={token}"
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(names(&rest), ["ops"]);
    let filtered: Value = app
        .get("/management/v1/roles?name=ENGIN")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(names(&filtered), ["engineers"]);

    let eng_id = eng["id"].as_str().unwrap();
    let ops_id = ops["id"].as_str().unwrap();
    let renamed: Value = app
        .put(
            &format!("/management/v1/roles/{ops_id}"),
            &json!({"name": "operators"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(renamed["name"], "operators");
    assert!(renamed.get("description").is_none());
    expect_error(
        app.put(
            &format!("/management/v1/roles/{ops_id}"),
            &json!({"name": "engineers"}),
        )
        .await,
        409,
    )
    .await;

    // Assignees: users, and other roles (whose assignees then hold this role too).
    let assignees = format!("/management/v1/roles/{eng_id}/assignees");
    let response = app
        .post(
            &assignees,
            &json!({"add": ["user:idp~alice", format!("role:{ops_id}"), "user:idp~bob"]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let listed: Value = app.get(&assignees).await.json().await.unwrap();
    assert_eq!(
        listed["assignees"],
        json!([format!("role:{ops_id}"), "user:idp~alice", "user:idp~bob"])
    );
    let after: Value = app
        .post(&assignees, &json!({"remove": ["user:idp~bob"]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        after["assignees"],
        json!([format!("role:{ops_id}"), "user:idp~alice"])
    );
    for bad in [
        json!({"add": ["alice"]}),
        json!({"add": ["user:alice"]}),
        json!({"add": ["group:x"]}),
        json!({"add": ["role:not-a-uuid"]}),
        json!({"add": [format!("role:{}", uuid::Uuid::now_v7())]}),
    ] {
        expect_error(app.post(&assignees, &bad).await, 400).await;
    }
    let unknown = uuid::Uuid::now_v7();
    expect_error(
        app.get(&format!("/management/v1/roles/{unknown}")).await,
        404,
    )
    .await;
    expect_error(
        app.get(&format!("/management/v1/roles/{unknown}/assignees"))
            .await,
        404,
    )
    .await;

    // Deleting ops removes it from engineers' assignees.
    let deleted = app.delete(&format!("/management/v1/roles/{ops_id}")).await;
    assert_eq!(deleted.status(), 204);
    let listed: Value = app.get(&assignees).await.json().await.unwrap();
    assert_eq!(listed["assignees"], json!(["user:idp~alice"]));
    expect_error(
        app.delete(&format!("/management/v1/roles/{ops_id}")).await,
        404,
    )
    .await;
}

async fn grants_follow_the_model(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let warehouse = app.create_local_warehouse("granted").await;
    let role: Value = app
        .post("/management/v1/roles", &json!({"name": "readers"}))
        .await
        .json()
        .await
        .unwrap();
    let role_id = role["id"].as_str().unwrap();
    let path = format!("/management/v1/grants/warehouse/{warehouse}");
    let empty: Value = app.get(&path).await.json().await.unwrap();
    assert_eq!(empty["grants"], json!([]));

    let response = app
        .post(
            &path,
            &json!({"grant": [
                {"subject": format!("role:{role_id}"), "relation": "select"},
                {"subject": "user:idp~bob", "relation": "ownership"},
                {"subject": "user:idp~carol", "relation": "manage_branches"},
            ]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let granted: Value = response.json().await.unwrap();
    assert_eq!(
        granted["grants"],
        json!([
            {"subject": format!("role:{role_id}"), "relation": "select"},
            {"subject": "user:idp~bob", "relation": "ownership"},
            {"subject": "user:idp~carol", "relation": "manage_branches"},
        ])
    );

    // Only relations the model lets be granted on the type; nothing is half applied.
    for (bad, status) in [
        (
            json!({"grant": [{"subject": "user:idp~bob", "relation": "can_load"}]}),
            400,
        ),
        (
            json!({"grant": [{"subject": "user:idp~bob", "relation": "parent"}]}),
            400,
        ),
        (
            json!({"grant": [{"subject": "user:idp~bob", "relation": "admin"}]}),
            400,
        ),
        (
            json!({"grant": [
                {"subject": "user:idp~dave", "relation": "select"},
                {"subject": "user:idp~dave", "relation": "browse"},
            ]}),
            400,
        ),
        (
            json!({"grant": [{"subject": "role:01234567-0000-7000-8000-000000000000", "relation": "select"}]}),
            400,
        ),
        (
            json!({"grant": [{"subject": "nobody", "relation": "select"}]}),
            400,
        ),
        (json!({"give": []}), 400),
    ] {
        let (_, message) = expect_error(app.post(&path, &bad).await, status).await;
        if bad["grant"][0]["relation"] == "can_load" {
            assert!(message.contains("grantable: create, describe"), "{message}");
        }
    }
    let unchanged: Value = app.get(&path).await.json().await.unwrap();
    assert_eq!(unchanged, granted);

    let revoked: Value = app
        .post(
            &path,
            &json!({"revoke": [{"subject": "user:idp~carol", "relation": "manage_branches"}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(revoked["grants"].as_array().unwrap().len(), 2);

    // A UUID is one object however it is written.
    let upper = format!(
        "/management/v1/grants/warehouse/{}",
        warehouse.to_uppercase()
    );
    let braced = format!("/management/v1/grants/warehouse/{{{warehouse}}}");
    app.post(
        &upper,
        &json!({"grant": [{"subject": "user:idp~erin", "relation": "describe"}]}),
    )
    .await;
    let seen: Value = app.get(&path).await.json().await.unwrap();
    assert!(
        seen["grants"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["subject"] == "user:idp~erin")
    );
    app.post(
        &braced,
        &json!({"revoke": [{"subject": "user:idp~erin", "relation": "describe"}]}),
    )
    .await;
    let gone: Value = app.get(&path).await.json().await.unwrap();
    assert!(
        !gone["grants"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["subject"] == "user:idp~erin")
    );
    // Malformed requests change nothing.
    let both = json!({"subject": "user:idp~erin", "relation": "select"});
    expect_error(
        app.post(&path, &json!({"grant": [both], "revoke": [both]}))
            .await,
        400,
    )
    .await;
    let many: Vec<Value> = (0..101)
        .map(|i| json!({"subject": format!("user:idp~u{i}"), "relation": "select"}))
        .collect();
    expect_error(app.post(&path, &json!({"grant": many})).await, 400).await;
    for subject in [
        "user:idp~a#b",
        "user:idp~a b",
        "user:i d~a",
        "user:~a",
        &format!("user:idp~{}", "x".repeat(600)),
    ] {
        expect_error(
            app.post(
                &path,
                &json!({"grant": [{"subject": subject, "relation": "select"}]}),
            )
            .await,
            400,
        )
        .await;
    }
    assert_eq!(app.get(&path).await.json::<Value>().await.unwrap(), gone);

    // Objects: unknown types, malformed and unknown ids.
    let unknown = uuid::Uuid::now_v7();
    expect_error(
        app.get(&format!("/management/v1/grants/bucket/{unknown}"))
            .await,
        400,
    )
    .await;
    expect_error(
        app.get("/management/v1/grants/warehouse/not-a-uuid").await,
        400,
    )
    .await;
    expect_error(
        app.get(&format!("/management/v1/grants/warehouse/{unknown}"))
            .await,
        404,
    )
    .await;
    expect_error(
        app.get(&format!("/management/v1/grants/project/{unknown}"))
            .await,
        404,
    )
    .await;
    expect_error(
        app.get(&format!("/management/v1/grants/server/{unknown}"))
            .await,
        404,
    )
    .await;

    // The server is named by its id; `admin` is granted there.
    let info: Value = app.get("/management/v1/info").await.json().await.unwrap();
    let server = format!(
        "/management/v1/grants/server/{}",
        info["server-id"].as_str().unwrap()
    );
    let admins: Value = app
        .post(
            &server,
            &json!({"grant": [{"subject": "user:idp~root", "relation": "admin"}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        admins["grants"],
        json!([{"subject": "user:idp~root", "relation": "admin"}])
    );
    expect_error(
        app.post(
            &server,
            &json!({"grant": [{"subject": "user:idp~root", "relation": "select"}]}),
        )
        .await,
        400,
    )
    .await;

    // Deleting the role removes its grants.
    assert_eq!(
        app.delete(&format!("/management/v1/roles/{role_id}"))
            .await
            .status(),
        204
    );
    let left: Value = app.get(&path).await.json().await.unwrap();
    assert_eq!(
        left["grants"],
        json!([{"subject": "user:idp~bob", "relation": "ownership"}])
    );
}
