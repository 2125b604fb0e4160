//! The persistence conformance suite: every test runs against SQLite and against PostgreSQL, each
//! on a fresh database.

use std::collections::BTreeMap;
use std::sync::Arc;

use floe::error::{Entity, ErrorKind};
use floe::model::{
    AccessKey, CommitId, CommitMeta, ForkPoint, MAIN_BRANCH, Namespace, NamespaceId,
    NamespaceIdent, PageRequest, Project, ProjectId, Properties, Ref, RefKind, Relationship, Role,
    SecretId, ServerInfo, StorageProfile, Tabular, TabularId, TabularIdent, TabularKind, User,
    UserKind, Warehouse, WarehouseId, now,
};
use floe::store::{MergeChange, Persistence, SealedSecret, TabularChange};

use crate::common::TestDb;

macro_rules! store_suite {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let db = crate::common::TestDb::new(crate::common::Backend::Sqlite).await;
                    super::$test(db.persistence().await, &db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let db = crate::common::TestDb::new(crate::common::Backend::Postgres).await;
                    super::$test(db.persistence().await, &db).await;
                }
            )*
        }
    };
}

store_suite!(
    bootstrap_happens_once,
    users_are_recorded_listed_and_deleted,
    roles_and_relationships_round_trip,
    a_callers_relationships_follow_nested_and_mapped_roles,
    tables_are_located_by_uuid_on_every_line,
    lists_filter_by_name_in_the_query,
    projects_are_named_uniquely,
    deleting_projects_respects_what_they_hold,
    warehouses_come_with_a_main_branch,
    warehouse_names_are_unique_per_project,
    warehouses_update_and_delete,
    nested_namespaces_need_their_parent,
    namespace_listing_pages_in_byte_order,
    namespaces_are_scoped_to_their_ref,
    namespace_properties_merge_and_report_the_old_values,
    concurrent_property_updates_lose_nothing,
    concurrent_creates_of_one_namespace_let_exactly_one_win,
    dropping_namespaces_checks_children,
    sealed_secrets_round_trip,
    timestamps_and_unicode_round_trip,
    tabulars_commit_by_compare_and_swap,
    tabular_commits_are_all_or_nothing,
    tabulars_list_drop_and_rename,
    concurrent_commits_fail_alone,
    commits_after_other_writes_to_the_line_keep_one_history,
    access_keys_are_listed_and_deleted_per_warehouse,
    overlapping_table_locations_are_found,
    claimed_folders_never_overlap,
    folders_stay_claimed_until_released,
    concurrent_creates_in_one_namespace_all_land,
    every_change_is_recorded_as_a_commit,
    branches_inherit_until_they_diverge,
    first_writes_on_a_branch_race_fairly,
    merges_compare_and_swap_the_target_head,
    tags_resets_and_commit_points,
    versions_other_refs_read_are_found,
    idempotency_keys_are_claimed_once,
    scan_plans_are_held_until_they_expire,
    tables_are_searched_by_name_across_namespaces,
);

/// Who the suite's changes are recorded as.
fn meta() -> &'static CommitMeta {
    static META: std::sync::LazyLock<CommitMeta> =
        std::sync::LazyLock::new(|| CommitMeta::new("store-suite", "a change"));
    &META
}

fn project(name: &str) -> Project {
    let at = now();
    Project {
        id: ProjectId::new(),
        name: name.into(),
        created_at: at,
        updated_at: at,
    }
}

pub(crate) async fn bootstrapped(store: &Persistence) -> ServerInfo {
    let default = project("default");
    let info = ServerInfo {
        server_id: uuid::Uuid::now_v7(),
        bootstrapped_at: now(),
        default_project_id: default.id,
        admin: None,
    };
    store.server.bootstrap(&info, &default, &[]).await.unwrap();
    info
}

/// A local profile of its own (warehouses never share storage, even in different projects).
fn local_profile(db: &TestDb, name: &str) -> StorageProfile {
    StorageProfile::Local {
        s3_gateway: false,
        root: db
            .dir
            .path()
            .join(format!("{name}-{}", uuid::Uuid::new_v4().simple())),
    }
}

pub(crate) async fn warehouse_in(
    store: &Persistence,
    db: &TestDb,
    project: ProjectId,
    name: &str,
) -> (Warehouse, Ref) {
    let at = now();
    let warehouse = Warehouse {
        id: WarehouseId::new(),
        project_id: project,
        name: name.into(),
        storage_profile: local_profile(db, name),
        credential_secret_id: None,
        created_at: at,
        updated_at: at,
    };
    let main = Ref::new_main(warehouse.id, at);
    store
        .warehouses
        .create_warehouse(&warehouse, &main, &[])
        .await
        .unwrap();
    (warehouse, main)
}

fn ns(levels: &[&str]) -> NamespaceIdent {
    NamespaceIdent::new(levels.iter().map(|s| s.to_string()).collect()).unwrap()
}

fn namespace(warehouse: &Warehouse, branch: &Ref, levels: &[&str]) -> Namespace {
    let at = now();
    Namespace {
        id: NamespaceId::new(),
        warehouse_id: warehouse.id,
        ref_id: branch.id,
        ident: ns(levels),
        properties: BTreeMap::new(),
        created_at: at,
        updated_at: at,
    }
}

async fn bootstrap_happens_once(store: Persistence, _db: &TestDb) {
    assert!(store.server.server_info().await.unwrap().is_none());
    let info = bootstrapped(&store).await;
    assert_eq!(
        store.server.server_info().await.unwrap(),
        Some(info.clone())
    );
    let again = project("other-default");
    let err = store
        .server
        .bootstrap(
            &ServerInfo {
                server_id: uuid::Uuid::now_v7(),
                bootstrapped_at: now(),
                default_project_id: again.id,
                admin: Some("idp~mallory".into()),
            },
            &again,
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
    // The failed second bootstrap left nothing behind.
    let projects = store.projects.list_projects().await.unwrap();
    assert_eq!(projects.len(), 1);
    assert_eq!(projects[0].id, info.default_project_id);
    store.server.health().await.unwrap();
    // A server bootstrapped with no admin gets one, once: the first claim wins.
    assert!(store.server.claim_admin("idp~alice", &[]).await.unwrap());
    assert!(!store.server.claim_admin("idp~mallory", &[]).await.unwrap());
    assert_eq!(
        store
            .server
            .server_info()
            .await
            .unwrap()
            .unwrap()
            .admin
            .as_deref(),
        Some("idp~alice")
    );
    // Settings: absent until written, then the last value written.
    let key = "authz.openfga.store_id";
    assert_eq!(store.server.setting(key).await.unwrap(), None);
    store.server.set_setting(key, "01ARZ3").await.unwrap();
    store.server.set_setting(key, "01HZX9").await.unwrap();
    assert_eq!(
        store.server.setting(key).await.unwrap().as_deref(),
        Some("01HZX9")
    );
    assert_eq!(store.server.setting("other").await.unwrap(), None);
}

async fn roles_and_relationships_round_trip(store: Persistence, _db: &TestDb) {
    let role = |name: &str| {
        let at = now();
        Role {
            id: uuid::Uuid::now_v7(),
            name: name.into(),
            description: Some(format!("the {name} ✓")),
            created_at: at,
            updated_at: at,
        }
    };
    let (eng, ops) = (role("engineers"), role("ops_100%"));
    store.authz.create_role(&eng, &[]).await.unwrap();
    store.authz.create_role(&ops, &[]).await.unwrap();
    let err = store
        .authz
        .create_role(&role("engineers"), &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::AlreadyExists(Entity::Role));
    let got = store.authz.get_role(eng.id).await.unwrap().unwrap();
    assert_eq!(
        (got.name.as_str(), got.description.as_deref()),
        ("engineers", Some("the engineers ✓"))
    );
    let names =
        |page: floe::model::Page<Role>| page.items.into_iter().map(|r| r.name).collect::<Vec<_>>();
    let all = PageRequest::all();
    assert_eq!(
        names(store.authz.list_roles(None, &all).await.unwrap()),
        ["engineers", "ops_100%"]
    );
    assert_eq!(
        names(store.authz.list_roles(Some("OPS_1"), &all).await.unwrap()),
        ["ops_100%"]
    );
    assert!(
        store
            .authz
            .list_roles(Some("e_g"), &all)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let first = store
        .authz
        .list_roles(
            None,
            &PageRequest {
                after: None,
                limit: Some(1),
            },
        )
        .await
        .unwrap();
    assert_eq!(first.next.as_deref(), Some("engineers"));
    let err = store
        .authz
        .update_role(ops.id, "engineers", None, now(), &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::AlreadyExists(Entity::Role));
    store
        .authz
        .update_role(ops.id, "operators", None, now(), &[])
        .await
        .unwrap();
    assert_eq!(
        store
            .authz
            .get_role(ops.id)
            .await
            .unwrap()
            .unwrap()
            .description,
        None
    );

    let rel =
        |object: (&str, &str), relation: &str, subject: (&str, &str, Option<&str>)| Relationship {
            object_type: object.0.into(),
            object_id: object.1.into(),
            relation: relation.into(),
            subject_type: subject.0.into(),
            subject_id: subject.1.into(),
            subject_relation: subject.2.map(str::to_string),
        };
    let eng_id = eng.id.to_string();
    let alice_in_eng = rel(("role", &eng_id), "assignee", ("user", "idp~alice", None));
    let eng_selects = rel(
        ("warehouse", "w1"),
        "select",
        ("role", &eng_id, Some("assignee")),
    );
    let bob_owns = rel(("warehouse", "w1"), "ownership", ("user", "idp~bob", None));
    store
        .authz
        .write_relationships(
            &[alice_in_eng.clone(), eng_selects.clone(), bob_owns.clone()],
            &[],
            now(),
            &[],
        )
        .await
        .unwrap();
    // Writing again is harmless; removing what is absent too; both happen at once.
    store
        .authz
        .write_relationships(
            std::slice::from_ref(&eng_selects),
            &[rel(("warehouse", "w1"), "modify", ("user", "nobody", None))],
            now(),
            &[],
        )
        .await
        .unwrap();
    let on_w1 = store
        .authz
        .object_relationships("warehouse", "w1")
        .await
        .unwrap();
    assert_eq!(on_w1, [bob_owns.clone(), eng_selects.clone()]);
    // All of them, page by page, each once, in one order (what is copied to OpenFGA).
    let mut all = Vec::new();
    let mut after: Option<floe::model::Relationship> = None;
    loop {
        let page = store
            .authz
            .all_relationships(after.as_ref(), 2)
            .await
            .unwrap();
        assert!(page.len() <= 2);
        if page.is_empty() {
            break;
        }
        after = page.last().cloned();
        all.extend(page);
    }
    assert_eq!(all.len(), 3, "{all:?}");
    for r in [&alice_in_eng, &eng_selects, &bob_owns] {
        assert_eq!(
            all.iter().filter(|x| x == &r).count(),
            1,
            "{r:?} in {all:?}"
        );
    }
    store
        .authz
        .write_relationships(&[], &[bob_owns], now(), &[])
        .await
        .unwrap();
    assert_eq!(
        store
            .authz
            .object_relationships("warehouse", "w1")
            .await
            .unwrap(),
        [eng_selects]
    );
    // Deleting a role removes its assignments and the grants to it.
    store.authz.delete_role(eng.id, &[]).await.unwrap();
    assert!(
        store
            .authz
            .object_relationships("warehouse", "w1")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .authz
            .object_relationships("role", &eng_id)
            .await
            .unwrap()
            .is_empty()
    );
    let err = store.authz.delete_role(eng.id, &[]).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound(Entity::Role));
}

async fn users_are_recorded_listed_and_deleted(store: Persistence, _db: &TestDb) {
    let user = |id: &str, name: Option<&str>, kind| {
        let at = now();
        User {
            id: id.into(),
            name: name.map(str::to_string),
            email: None,
            kind,
            created_at: at,
            updated_at: at,
            last_seen_at: Some(at),
        }
    };
    let alice = user("idp~alice", Some("Alice Liddell ✓"), UserKind::Human);
    assert!(store.users.upsert_user(&alice, &[], &[]).await.unwrap());
    let mut renamed = user("idp~alice", Some("Alice L."), UserKind::Human);
    renamed.last_seen_at = None;
    assert!(!store.users.upsert_user(&renamed, &[], &[]).await.unwrap());
    let got = store.users.get_user("idp~alice").await.unwrap().unwrap();
    assert_eq!(got.name.as_deref(), Some("Alice L."));
    // An update without a sighting keeps the last one; creation time stays.
    assert_eq!(
        got.last_seen_at.map(|t| t.timestamp_micros()),
        alice.last_seen_at.map(|t| t.timestamp_micros())
    );
    assert_eq!(
        got.created_at.timestamp_micros(),
        alice.created_at.timestamp_micros()
    );
    for (id, name) in [
        ("idp~bob", Some("Bob")),
        ("k8s~system:serviceaccount:etl:spark", None),
        ("idp~carol_100%", Some("Carol")),
    ] {
        store
            .users
            .upsert_user(&user(id, name, UserKind::Machine), &[], &[])
            .await
            .unwrap();
    }
    let ids =
        |page: floe::model::Page<User>| page.items.into_iter().map(|u| u.id).collect::<Vec<_>>();
    // Pages by id.
    let first = store
        .users
        .list_users(
            None,
            &PageRequest {
                after: None,
                limit: Some(2),
            },
        )
        .await
        .unwrap();
    assert_eq!(first.next.as_deref(), Some("idp~bob"));
    assert_eq!(ids(first), ["idp~alice", "idp~bob"]);
    let rest = store
        .users
        .list_users(
            None,
            &PageRequest {
                after: Some("idp~bob".into()),
                limit: Some(2),
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.next, None);
    assert_eq!(
        ids(rest),
        ["idp~carol_100%", "k8s~system:serviceaccount:etl:spark"]
    );
    // The name filter matches name or id, case-insensitively; `%` and `_` are literal.
    let all = PageRequest::all();
    assert_eq!(
        ids(store.users.list_users(Some("ALICE"), &all).await.unwrap()),
        ["idp~alice"]
    );
    assert_eq!(
        ids(store.users.list_users(Some("spark"), &all).await.unwrap()),
        ["k8s~system:serviceaccount:etl:spark"]
    );
    assert_eq!(
        ids(store.users.list_users(Some("100%"), &all).await.unwrap()),
        ["idp~carol_100%"]
    );
    assert!(
        store
            .users
            .list_users(Some("i_p"), &all)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        store
            .users
            .list_users(Some("%"), &all)
            .await
            .unwrap()
            .items
            .len()
            == 1
    );
    // A deleted user's grants go with them.
    let grant = Relationship {
        object_type: "warehouse".into(),
        object_id: "w1".into(),
        relation: "select".into(),
        subject_type: "user".into(),
        subject_id: "idp~bob".into(),
        subject_relation: None,
    };
    let other = Relationship {
        subject_id: "idp~alice".into(),
        ..grant.clone()
    };
    store
        .authz
        .write_relationships(&[grant, other.clone()], &[], now(), &[])
        .await
        .unwrap();
    store.users.delete_user("idp~bob", &[]).await.unwrap();
    assert_eq!(
        store
            .authz
            .object_relationships("warehouse", "w1")
            .await
            .unwrap(),
        [other]
    );
    let err = store.users.delete_user("idp~bob", &[]).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound(Entity::User));
    assert!(store.users.get_user("idp~bob").await.unwrap().is_none());
}

async fn projects_are_named_uniquely(store: Persistence, _db: &TestDb) {
    let b = project("b-project");
    let a = project("a-project");
    store.projects.create_project(&b, &[]).await.unwrap();
    store.projects.create_project(&a, &[]).await.unwrap();
    let err = store
        .projects
        .create_project(&project("a-project"), &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::AlreadyExists(Entity::Project));
    let names: Vec<_> = store
        .projects
        .list_projects()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["a-project", "b-project"]);
    assert_eq!(
        store.projects.get_project(a.id).await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        store.projects.get_project(ProjectId::new()).await.unwrap(),
        None
    );

    let err = store
        .projects
        .rename_project(a.id, "b-project", now(), &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::AlreadyExists(Entity::Project));
    store
        .projects
        .rename_project(a.id, "c-project", now(), &[])
        .await
        .unwrap();
    assert_eq!(
        store
            .projects
            .get_project(a.id)
            .await
            .unwrap()
            .unwrap()
            .name,
        "c-project"
    );
    let err = store
        .projects
        .rename_project(ProjectId::new(), "x", now(), &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound(Entity::Project));
}

async fn deleting_projects_respects_what_they_hold(store: Persistence, db: &TestDb) {
    let info = bootstrapped(&store).await;
    let err = store
        .projects
        .delete_project(info.default_project_id, &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotEmpty(Entity::Project));

    let p = project("team");
    store.projects.create_project(&p, &[]).await.unwrap();
    let (warehouse, _) = warehouse_in(&store, db, p.id, "wh-1").await;
    let err = store.projects.delete_project(p.id, &[]).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotEmpty(Entity::Project));
    store
        .warehouses
        .delete_warehouse(warehouse.id, false, &[])
        .await
        .unwrap();
    store.projects.delete_project(p.id, &[]).await.unwrap();
    assert!(store.projects.get_project(p.id).await.unwrap().is_none());
    let err = store.projects.delete_project(p.id, &[]).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound(Entity::Project));
}

async fn warehouses_come_with_a_main_branch(store: Persistence, db: &TestDb) {
    let info = bootstrapped(&store).await;
    let (warehouse, main) = warehouse_in(&store, db, info.default_project_id, "demo").await;
    assert_eq!(
        store.warehouses.get_warehouse(warehouse.id).await.unwrap(),
        Some(warehouse.clone())
    );
    assert_eq!(
        store
            .warehouses
            .get_ref(warehouse.id, MAIN_BRANCH)
            .await
            .unwrap(),
        Some(main)
    );
    assert!(
        store
            .warehouses
            .get_ref(warehouse.id, "dev")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .warehouses
            .get_warehouse_by_name(info.default_project_id, "demo")
            .await
            .unwrap(),
        Some(warehouse)
    );

    let mut orphan = warehouse_in_memory(db, ProjectId::new(), "orphan");
    orphan.0.id = WarehouseId::new();
    let err = store
        .warehouses
        .create_warehouse(&orphan.0, &orphan.1, &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound(Entity::Project));
}

fn warehouse_in_memory(db: &TestDb, project: ProjectId, name: &str) -> (Warehouse, Ref) {
    let at = now();
    let warehouse = Warehouse {
        id: WarehouseId::new(),
        project_id: project,
        name: name.into(),
        storage_profile: local_profile(db, name),
        credential_secret_id: None,
        created_at: at,
        updated_at: at,
    };
    let main = Ref::new_main(warehouse.id, at);
    (warehouse, main)
}

async fn warehouse_names_are_unique_per_project(store: Persistence, db: &TestDb) {
    let info = bootstrapped(&store).await;
    let other = project("other");
    store.projects.create_project(&other, &[]).await.unwrap();
    warehouse_in(&store, db, info.default_project_id, "lake").await;
    // The same name in another project is fine.
    warehouse_in(&store, db, other.id, "lake").await;
    let (dup, main) = warehouse_in_memory(db, info.default_project_id, "lake");
    let err = store
        .warehouses
        .create_warehouse(&dup, &main, &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::AlreadyExists(Entity::Warehouse));
    // Nothing of the failed create remains: neither the warehouse nor its ref.
    assert!(
        store
            .warehouses
            .get_warehouse(dup.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .warehouses
            .get_ref(dup.id, MAIN_BRANCH)
            .await
            .unwrap()
            .is_none()
    );

    assert_eq!(
        store.warehouses.list_warehouses(None).await.unwrap().len(),
        2
    );
    let mine = store
        .warehouses
        .list_warehouses(Some(other.id))
        .await
        .unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].project_id, other.id);
}

async fn warehouses_update_and_delete(store: Persistence, db: &TestDb) {
    let info = bootstrapped(&store).await;
    let (warehouse, main) = warehouse_in(&store, db, info.default_project_id, "one").await;
    warehouse_in(&store, db, info.default_project_id, "two").await;

    let err = store
        .warehouses
        .rename_warehouse(warehouse.id, "two", now(), &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::AlreadyExists(Entity::Warehouse));
    store
        .warehouses
        .rename_warehouse(warehouse.id, "three", now(), &[])
        .await
        .unwrap();

    let profile: StorageProfile = serde_json::from_value(serde_json::json!({
        "type": "s3", "bucket": "lake", "region": "eu-west-1", "path-style-access": true
    }))
    .unwrap();
    let secret = SecretId::new();
    store
        .warehouses
        .update_warehouse_storage(warehouse.id, &profile, Some(secret), now(), &[])
        .await
        .unwrap();
    let updated = store
        .warehouses
        .get_warehouse(warehouse.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.name, "three");
    assert_eq!(updated.storage_profile, profile);
    assert_eq!(updated.credential_secret_id, Some(secret));

    // A warehouse holding a namespace cannot go.
    store
        .namespaces
        .create_namespace(&namespace(&warehouse, &main, &["ns"]), meta())
        .await
        .unwrap();
    let err = store
        .warehouses
        .delete_warehouse(warehouse.id, false, &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotEmpty(Entity::Warehouse));
    // Protection is checked in the drop's and the delete's own transaction: only force passes.
    use floe::model::lifecycle::ProtectedObject;
    for object in [
        ProtectedObject::Namespace(ns(&["ns"])),
        ProtectedObject::Warehouse,
    ] {
        store
            .lifecycle
            .set_protection(warehouse.id, &object, true, &[])
            .await
            .unwrap();
    }
    let err = store
        .namespaces
        .drop_namespace(main.id, &ns(&["ns"]), false, meta())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict, "{err:?}");
    store
        .namespaces
        .drop_namespace(main.id, &ns(&["ns"]), true, meta())
        .await
        .unwrap();
    let err = store
        .warehouses
        .delete_warehouse(warehouse.id, false, &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict, "{err:?}");
    // An unfinished task (a purge) keeps it, even forced; a finished one does not.
    let task = floe::model::lifecycle::NewTask {
        id: uuid::Uuid::now_v7(),
        warehouse_id: warehouse.id,
        queue: "purge",
        target: "purge:x".into(),
        payload: serde_json::json!({}),
        scheduled_at: 0,
        max_attempts: 1,
    };
    store
        .tasks
        .enqueue_tasks(std::slice::from_ref(&task))
        .await
        .unwrap();
    let err = store
        .warehouses
        .delete_warehouse(warehouse.id, true, &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotEmpty(Entity::Warehouse), "{err:?}");
    store
        .tasks
        .cancel_task(warehouse.id, task.id, 1)
        .await
        .unwrap();
    store
        .warehouses
        .delete_warehouse(warehouse.id, true, &[])
        .await
        .unwrap();
    assert!(
        store
            .warehouses
            .get_warehouse(warehouse.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .warehouses
            .get_ref(warehouse.id, MAIN_BRANCH)
            .await
            .unwrap()
            .is_none()
    );
    let err = store
        .warehouses
        .delete_warehouse(warehouse.id, false, &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound(Entity::Warehouse));
    let err = store
        .warehouses
        .update_warehouse_storage(warehouse.id, &profile, None, now(), &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound(Entity::Warehouse));
}

async fn nested_namespaces_need_their_parent(store: Persistence, db: &TestDb) {
    let info = bootstrapped(&store).await;
    let (warehouse, main) = warehouse_in(&store, db, info.default_project_id, "wh").await;
    let err = store
        .namespaces
        .create_namespace(&namespace(&warehouse, &main, &["a", "b"]), meta())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound(Entity::Namespace));
    let mut a = namespace(&warehouse, &main, &["a"]);
    a.properties.insert("owner".into(), "me".into());
    store.namespaces.create_namespace(&a, meta()).await.unwrap();
    store
        .namespaces
        .create_namespace(&namespace(&warehouse, &main, &["a", "b"]), meta())
        .await
        .unwrap();
    let err = store
        .namespaces
        .create_namespace(&namespace(&warehouse, &main, &["a"]), meta())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::AlreadyExists(Entity::Namespace));
    let loaded = store
        .namespaces
        .get_namespace(main.id, &ns(&["a"]))
        .await
        .unwrap();
    assert_eq!(loaded, Some(a));
    assert!(
        store
            .namespaces
            .get_namespace(main.id, &ns(&["b"]))
            .await
            .unwrap()
            .is_none()
    );
}

async fn namespace_listing_pages_in_byte_order(store: Persistence, db: &TestDb) {
    let info = bootstrapped(&store).await;
    let (warehouse, main) = warehouse_in(&store, db, info.default_project_id, "wh").await;
    let names = ["b", "B", "a", "ä", "a b", "z", "_"];
    for name in names {
        store
            .namespaces
            .create_namespace(&namespace(&warehouse, &main, &[name]), meta())
            .await
            .unwrap();
    }
    store
        .namespaces
        .create_namespace(&namespace(&warehouse, &main, &["a", "child"]), meta())
        .await
        .unwrap();
    let mut expected: Vec<&str> = names.to_vec();
    expected.sort(); // byte order, the same on both backends
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .namespaces
            .list_namespaces(
                main.id,
                None,
                &PageRequest {
                    after: after.clone(),
                    limit: Some(3),
                },
                None,
            )
            .await
            .unwrap();
        assert!(page.items.len() <= 3);
        seen.extend(page.items.iter().map(|n| n.levels()[0].clone()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    let all = store
        .namespaces
        .list_namespaces(main.id, None, &PageRequest::all(), None)
        .await
        .unwrap();
    assert_eq!(all.items.len(), names.len());
    assert_eq!(all.next, None);
    let children = store
        .namespaces
        .list_namespaces(main.id, Some(&ns(&["a"])), &PageRequest::all(), None)
        .await
        .unwrap();
    assert_eq!(children.items, vec![ns(&["a", "child"])]);
}

async fn namespaces_are_scoped_to_their_ref(store: Persistence, db: &TestDb) {
    let info = bootstrapped(&store).await;
    let (one, one_main) = warehouse_in(&store, db, info.default_project_id, "one").await;
    let (two, two_main) = warehouse_in(&store, db, info.default_project_id, "two").await;
    store
        .namespaces
        .create_namespace(&namespace(&one, &one_main, &["shared"]), meta())
        .await
        .unwrap();
    // The same name in another warehouse is another namespace.
    store
        .namespaces
        .create_namespace(&namespace(&two, &two_main, &["shared"]), meta())
        .await
        .unwrap();
    store
        .namespaces
        .create_namespace(&namespace(&one, &one_main, &["only-one"]), meta())
        .await
        .unwrap();
    let listed = store
        .namespaces
        .list_namespaces(two_main.id, None, &PageRequest::all(), None)
        .await
        .unwrap();
    assert_eq!(listed.items, vec![ns(&["shared"])]);
    store
        .namespaces
        .drop_namespace(one_main.id, &ns(&["shared"]), false, meta())
        .await
        .unwrap();
    assert!(
        store
            .namespaces
            .get_namespace(two_main.id, &ns(&["shared"]))
            .await
            .unwrap()
            .is_some()
    );
}

async fn namespace_properties_merge_and_report_the_old_values(store: Persistence, db: &TestDb) {
    let info = bootstrapped(&store).await;
    let (warehouse, main) = warehouse_in(&store, db, info.default_project_id, "wh").await;
    let mut a = namespace(&warehouse, &main, &["a"]);
    a.properties.insert("keep".into(), "1".into());
    a.properties.insert("drop".into(), "2".into());
    store.namespaces.create_namespace(&a, meta()).await.unwrap();
    let updates = BTreeMap::from([
        ("new".to_string(), "3".to_string()),
        ("keep".to_string(), "4".to_string()),
    ]);
    let before = store
        .namespaces
        .update_namespace_properties(
            main.id,
            &ns(&["a"]),
            &updates,
            &["drop".into(), "absent".into()],
            now(),
            meta(),
        )
        .await
        .unwrap();
    assert_eq!(before, a.properties);
    let after = store
        .namespaces
        .get_namespace(main.id, &ns(&["a"]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        after.properties,
        BTreeMap::from([
            ("keep".to_string(), "4".to_string()),
            ("new".to_string(), "3".to_string())
        ])
    );
    let err = store
        .namespaces
        .update_namespace_properties(main.id, &ns(&["zz"]), &updates, &[], now(), meta())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound(Entity::Namespace));
}

async fn concurrent_property_updates_lose_nothing(store: Persistence, db: &TestDb) {
    let info = bootstrapped(&store).await;
    let (warehouse, main) = warehouse_in(&store, db, info.default_project_id, "wh").await;
    store
        .namespaces
        .create_namespace(&namespace(&warehouse, &main, &["hot"]), meta())
        .await
        .unwrap();
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for writer in 0..8 {
        let store = store.clone();
        let ref_id = main.id;
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                let updates = BTreeMap::from([(format!("w{writer}-{i}"), "x".to_string())]);
                store
                    .namespaces
                    .update_namespace_properties(
                        ref_id,
                        &ns(&["hot"]),
                        &updates,
                        &[],
                        now(),
                        meta(),
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let hot = store
        .namespaces
        .get_namespace(main.id, &ns(&["hot"]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        hot.properties.len(),
        80,
        "every acknowledged update is kept"
    );
}

async fn concurrent_creates_of_one_namespace_let_exactly_one_win(store: Persistence, db: &TestDb) {
    let info = bootstrapped(&store).await;
    let (warehouse, main) = warehouse_in(&store, db, info.default_project_id, "wh").await;
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        let candidate = namespace(&warehouse, &main, &["race"]);
        tasks.push(tokio::spawn(async move {
            store.namespaces.create_namespace(&candidate, meta()).await
        }));
    }
    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => wins += 1,
            Err(e) => assert_eq!(e.kind, ErrorKind::AlreadyExists(Entity::Namespace)),
        }
    }
    assert_eq!(wins, 1);
}

async fn dropping_namespaces_checks_children(store: Persistence, db: &TestDb) {
    let info = bootstrapped(&store).await;
    let (warehouse, main) = warehouse_in(&store, db, info.default_project_id, "wh").await;
    for levels in [&["a"][..], &["a", "b"][..], &["a", "b", "c"][..]] {
        store
            .namespaces
            .create_namespace(&namespace(&warehouse, &main, levels), meta())
            .await
            .unwrap();
    }
    for levels in [&["a"][..], &["a", "b"][..]] {
        let err = store
            .namespaces
            .drop_namespace(main.id, &ns(levels), false, meta())
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotEmpty(Entity::Namespace));
    }
    for levels in [&["a", "b", "c"][..], &["a", "b"][..], &["a"][..]] {
        store
            .namespaces
            .drop_namespace(main.id, &ns(levels), false, meta())
            .await
            .unwrap();
    }
    let err = store
        .namespaces
        .drop_namespace(main.id, &ns(&["a"]), false, meta())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound(Entity::Namespace));
}

async fn sealed_secrets_round_trip(store: Persistence, _db: &TestDb) {
    let id = SecretId::new();
    let at = now();
    let sealed = SealedSecret {
        nonce: vec![1; 12],
        ciphertext: vec![0, 1, 2, 255],
        created_at: at,
        updated_at: at,
    };
    assert!(store.secrets.get_secret(id).await.unwrap().is_none());
    store.secrets.put_secret(id, &sealed).await.unwrap();
    assert_eq!(
        store.secrets.get_secret(id).await.unwrap(),
        Some(sealed.clone())
    );
    let replaced = SealedSecret {
        ciphertext: vec![9; 40],
        updated_at: now(),
        ..sealed
    };
    store.secrets.put_secret(id, &replaced).await.unwrap();
    assert_eq!(store.secrets.get_secret(id).await.unwrap(), Some(replaced));
    store.secrets.delete_secret(id).await.unwrap();
    assert!(store.secrets.get_secret(id).await.unwrap().is_none());
    store.secrets.delete_secret(id).await.unwrap();
}

async fn timestamps_and_unicode_round_trip(store: Persistence, db: &TestDb) {
    let info = bootstrapped(&store).await;
    let (warehouse, main) = warehouse_in(&store, db, info.default_project_id, "wh").await;
    let mut n = namespace(&warehouse, &main, &["日本語", "emoji 🚀", "quote'\"%_\\"]);
    n.properties.insert("ключ".into(), "значение 🚀".into());
    for depth in 1..=3 {
        let mut level = n.clone();
        level.id = NamespaceId::new();
        level.ident = NamespaceIdent::new(n.ident.levels()[..depth].to_vec()).unwrap();
        if depth < 3 {
            level.properties.clear();
            store
                .namespaces
                .create_namespace(&level, meta())
                .await
                .unwrap();
        } else {
            store.namespaces.create_namespace(&n, meta()).await.unwrap();
        }
    }
    let loaded = store
        .namespaces
        .get_namespace(main.id, &n.ident)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded, n);
}

fn tabular(
    warehouse: &Warehouse,
    branch: &Ref,
    ns_levels: &[&str],
    name: &str,
    kind: TabularKind,
) -> Tabular {
    let at = now();
    Tabular {
        id: TabularId::new(),
        warehouse_id: warehouse.id,
        ref_id: branch.id,
        ident: TabularIdent::new(ns(ns_levels), name.into()).unwrap(),
        kind,
        uuid: uuid::Uuid::new_v4(),
        location: format!("file:///wh/{name}"),
        metadata_location: format!("file:///wh/{name}/metadata/00000-x.metadata.json"),
        metadata: format!("{{\"name\":\"{name}\",\"pad\":\"{}\"}}", "x".repeat(4000))
            .into_bytes()
            .into(),
        version: 0,
        created_at: at,
        updated_at: at,
    }
}

fn update_of(t: &Tabular, expected: i64, file: &str) -> TabularChange {
    TabularChange::Update {
        id: t.id,
        ident: t.ident.clone(),
        expected_version: expected,
        uuid: t.uuid,
        location: t.location.clone(),
        metadata_location: file.into(),
        metadata: format!("{{\"file\":\"{file}\"}}").into_bytes().into(),
        at: now(),
        claims_location: None,
    }
}

async fn tabulars_commit_by_compare_and_swap(store: Persistence, db: &TestDb) {
    let info = bootstrapped(&store).await;
    let (warehouse, main) = warehouse_in(&store, db, info.default_project_id, "wh").await;
    store
        .namespaces
        .create_namespace(&namespace(&warehouse, &main, &["ns"]), meta())
        .await
        .unwrap();
    let t = tabular(&warehouse, &main, &["ns"], "t", TabularKind::Table);
    store
        .tabulars
        .commit_tabulars(main.id, &[TabularChange::Create(t.clone())], meta())
        .await
        .unwrap();
    let loaded = store
        .tabulars
        .get_tabular(main.id, &t.ident)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded, t, "metadata round-trips through compression");
    let found = store
        .tabulars
        .find_tabular(warehouse.id, MAIN_BRANCH, &t.ident)
        .await
        .unwrap();
    assert_eq!(found, Some(t.clone()));
    assert!(
        store
            .tabulars
            .find_tabular(warehouse.id, "dev", &t.ident)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .tabulars
            .find_tabular(WarehouseId::new(), MAIN_BRANCH, &t.ident)
            .await
            .unwrap()
            .is_none()
    );

    store
        .tabulars
        .commit_tabulars(main.id, &[update_of(&t, 0, "one")], meta())
        .await
        .unwrap();
    // The same expected version again: the swap fails and nothing changes.
    let err = store
        .tabulars
        .commit_tabulars(main.id, &[update_of(&t, 0, "two")], meta())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::CommitConflict);
    let current = store
        .tabulars
        .get_tabular(main.id, &t.ident)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.version, 1);
    assert_eq!(current.metadata_location, "one");
    assert_eq!(
        store
            .tabulars
            .find_tabular_version(warehouse.id, MAIN_BRANCH, &t.ident)
            .await
            .unwrap(),
        Some((t.id, 1))
    );

    // Concurrent swaps from one version: exactly one wins.
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        let change = update_of(&t, 1, &format!("racer-{i}"));
        let ref_id = main.id;
        tasks.push(tokio::spawn(async move {
            store
                .tabulars
                .commit_tabulars(ref_id, &[change], meta())
                .await
        }));
    }
    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => wins += 1,
            Err(e) => assert_eq!(e.kind, ErrorKind::CommitConflict),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(
        store
            .tabulars
            .get_tabular(main.id, &t.ident)
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );

    // A name is taken by a table or a view alike.
    let view = tabular(&warehouse, &main, &["ns"], "t", TabularKind::View);
    let err = store
        .tabulars
        .commit_tabulars(main.id, &[TabularChange::Create(view)], meta())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::AlreadyExists(Entity::View));
    let orphan = tabular(&warehouse, &main, &["ghost"], "t", TabularKind::Table);
    let err = store
        .tabulars
        .commit_tabulars(main.id, &[TabularChange::Create(orphan)], meta())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound(Entity::Namespace));
}

async fn tabular_commits_are_all_or_nothing(store: Persistence, db: &TestDb) {
    let info = bootstrapped(&store).await;
    let (warehouse, main) = warehouse_in(&store, db, info.default_project_id, "wh").await;
    store
        .namespaces
        .create_namespace(&namespace(&warehouse, &main, &["ns"]), meta())
        .await
        .unwrap();
    let a = tabular(&warehouse, &main, &["ns"], "a", TabularKind::Table);
    let b = tabular(&warehouse, &main, &["ns"], "b", TabularKind::Table);
    store
        .tabulars
        .commit_tabulars(
            main.id,
            &[
                TabularChange::Create(a.clone()),
                TabularChange::Create(b.clone()),
            ],
            meta(),
        )
        .await
        .unwrap();
    let c = tabular(&warehouse, &main, &["ns"], "c", TabularKind::Table);
    // a moves, c is created, b's swap is stale: none of it happens.
    let err = store
        .tabulars
        .commit_tabulars(
            main.id,
            &[
                update_of(&a, 0, "a1"),
                TabularChange::Create(c.clone()),
                update_of(&b, 5, "b1"),
            ],
            meta(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::CommitConflict);
    assert_eq!(
        store
            .tabulars
            .get_tabular(main.id, &a.ident)
            .await
            .unwrap()
            .unwrap()
            .version,
        0
    );
    assert!(
        store
            .tabulars
            .get_tabular(main.id, &c.ident)
            .await
            .unwrap()
            .is_none()
    );
    store
        .tabulars
        .commit_tabulars(
            main.id,
            &[
                update_of(&a, 0, "a1"),
                TabularChange::Create(c.clone()),
                update_of(&b, 0, "b1"),
            ],
            meta(),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .tabulars
            .get_tabular(main.id, &b.ident)
            .await
            .unwrap()
            .unwrap()
            .metadata_location,
        "b1"
    );
    assert!(
        store
            .tabulars
            .get_tabular(main.id, &c.ident)
            .await
            .unwrap()
            .is_some()
    );
}

async fn tabulars_list_drop_and_rename(store: Persistence, db: &TestDb) {
    let info = bootstrapped(&store).await;
    let (warehouse, main) = warehouse_in(&store, db, info.default_project_id, "wh").await;
    for levels in [&["ns"][..], &["other"][..]] {
        store
            .namespaces
            .create_namespace(&namespace(&warehouse, &main, levels), meta())
            .await
            .unwrap();
    }
    for (name, kind) in [
        ("t2", TabularKind::Table),
        ("t1", TabularKind::Table),
        ("v1", TabularKind::View),
        ("t3", TabularKind::Table),
    ] {
        let t = tabular(&warehouse, &main, &["ns"], name, kind);
        store
            .tabulars
            .commit_tabulars(main.id, &[TabularChange::Create(t)], meta())
            .await
            .unwrap();
    }
    let page = store
        .tabulars
        .list_tabulars(
            main.id,
            &ns(&["ns"]),
            TabularKind::Table,
            &PageRequest {
                after: None,
                limit: Some(2),
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(page.items, ["t1", "t2"]);
    let rest = store
        .tabulars
        .list_tabulars(
            main.id,
            &ns(&["ns"]),
            TabularKind::Table,
            &PageRequest {
                after: page.next,
                limit: Some(2),
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(rest.items, ["t3"]);
    assert_eq!(rest.next, None);
    let views = store
        .tabulars
        .list_tabulars(
            main.id,
            &ns(&["ns"]),
            TabularKind::View,
            &PageRequest::all(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(views.items, ["v1"]);

    let err = store
        .namespaces
        .drop_namespace(main.id, &ns(&["ns"]), false, meta())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotEmpty(Entity::Namespace));

    let t1 = TabularIdent::new(ns(&["ns"]), "t1".into()).unwrap();
    let moved = TabularIdent::new(ns(&["other"]), "moved".into()).unwrap();
    let t2 = TabularIdent::new(ns(&["ns"]), "t2".into()).unwrap();
    store
        .tabulars
        .rename_tabular(main.id, &t1, &moved, TabularKind::Table, meta())
        .await
        .unwrap();
    assert!(
        store
            .tabulars
            .get_tabular(main.id, &t1)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .tabulars
            .get_tabular(main.id, &moved)
            .await
            .unwrap()
            .is_some()
    );
    let err = store
        .tabulars
        .rename_tabular(main.id, &moved, &t2, TabularKind::Table, meta())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::AlreadyExists(Entity::Table));
    let nowhere = TabularIdent::new(ns(&["ghost"]), "x".into()).unwrap();
    let err = store
        .tabulars
        .rename_tabular(main.id, &moved, &nowhere, TabularKind::Table, meta())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound(Entity::Namespace));
    let v1 = TabularIdent::new(ns(&["ns"]), "v1".into()).unwrap();
    let err = store
        .tabulars
        .rename_tabular(main.id, &v1, &nowhere, TabularKind::Table, meta())
        .await
        .unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::NotFound(Entity::Table),
        "a view is not renamed as a table"
    );

    let dropped = store
        .tabulars
        .drop_tabular(
            main.id,
            &moved,
            TabularKind::Table,
            meta(),
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(dropped.ident, moved);
    let err = store
        .tabulars
        .drop_tabular(
            main.id,
            &moved,
            TabularKind::Table,
            meta(),
            &Default::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound(Entity::Table));
    let err = store
        .tabulars
        .drop_tabular(
            main.id,
            &v1,
            TabularKind::Table,
            meta(),
            &Default::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound(Entity::Table));
    store
        .tabulars
        .drop_tabular(main.id, &v1, TabularKind::View, meta(), &Default::default())
        .await
        .unwrap();
}

/// Many commits at once (on SQLite they share transactions): the ones whose compare-and-swap fails
/// fail alone, every other one lands, and the cached reads follow.
async fn concurrent_commits_fail_alone(store: Persistence, db: &TestDb) {
    let info = bootstrapped(&store).await;
    let (warehouse, main) = warehouse_in(&store, db, info.default_project_id, "wh").await;
    store
        .namespaces
        .create_namespace(&namespace(&warehouse, &main, &["ns"]), meta())
        .await
        .unwrap();
    let tables: Vec<Tabular> = (0..16)
        .map(|i| {
            tabular(
                &warehouse,
                &main,
                &["ns"],
                &format!("t{i}"),
                TabularKind::Table,
            )
        })
        .collect();
    store
        .tabulars
        .commit_tabulars(
            main.id,
            &tables
                .iter()
                .cloned()
                .map(TabularChange::Create)
                .collect::<Vec<_>>(),
            meta(),
        )
        .await
        .unwrap();
    // Even tables get a valid swap, odd ones a stale one; all are sent at once.
    let mut tasks = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let store = store.clone();
        let change = update_of(t, if i % 2 == 0 { 0 } else { 7 }, &format!("v1-{i}"));
        let ref_id = main.id;
        tasks.push(tokio::spawn(async move {
            store
                .tabulars
                .commit_tabulars(ref_id, &[change], meta())
                .await
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let result = task.await.unwrap();
        if i % 2 == 0 {
            result.unwrap();
        } else {
            assert_eq!(result.unwrap_err().kind, ErrorKind::CommitConflict);
        }
    }
    for (i, t) in tables.iter().enumerate() {
        let found = store
            .tabulars
            .find_tabular(warehouse.id, MAIN_BRANCH, &t.ident)
            .await
            .unwrap()
            .unwrap();
        if i % 2 == 0 {
            assert_eq!(
                (found.version, found.metadata_location.as_str()),
                (1, format!("v1-{i}").as_str())
            );
        } else {
            assert_eq!(found.version, 0);
        }
    }
    // The branch's history records each swap that landed, once, and none that lost.
    let head = current(&store, &warehouse, MAIN_BRANCH).await;
    let (commits, _) = store
        .refs
        .list_commits(main.id, head.head_seq, 100)
        .await
        .unwrap();
    let mut recorded: Vec<String> = commits
        .iter()
        .flat_map(|c| &c.changes)
        .filter(|change| change.op == "update")
        .map(|change| change.metadata_location.clone().unwrap())
        .collect();
    recorded.sort();
    let mut expected: Vec<String> = (0..16).step_by(2).map(|i| format!("v1-{i}")).collect();
    expected.sort();
    assert_eq!(recorded, expected);
}

/// A commit writer remembers each line's head between its groups; writes that move the line
/// another way (a namespace, a dropped table) in between must not fork or lose history: every
/// commit is the child of the one before it, with consecutive sequence numbers.
async fn commits_after_other_writes_to_the_line_keep_one_history(store: Persistence, db: &TestDb) {
    let info = bootstrapped(&store).await;
    let (warehouse, main) = warehouse_in(&store, db, info.default_project_id, "wh").await;
    store
        .namespaces
        .create_namespace(&namespace(&warehouse, &main, &["ns"]), meta())
        .await
        .unwrap();
    let t = tabular(&warehouse, &main, &["ns"], "t", TabularKind::Table);
    let commit = |change: TabularChange| {
        let store = store.clone();
        async move {
            store
                .tabulars
                .commit_tabulars(main.id, &[change], meta())
                .await
        }
    };
    commit(TabularChange::Create(t.clone())).await.unwrap();
    for version in 0..4 {
        commit(update_of(&t, version, &format!("v{}", version + 1)))
            .await
            .unwrap();
        // The line moves outside the commit writer.
        store
            .namespaces
            .create_namespace(
                &namespace(&warehouse, &main, &[&format!("other{version}")]),
                meta(),
            )
            .await
            .unwrap();
    }
    let head = current(&store, &warehouse, MAIN_BRANCH).await;
    let (commits, next) = store
        .refs
        .list_commits(main.id, head.head_seq, 100)
        .await
        .unwrap();
    assert_eq!(next, None);
    // The root, a namespace, the create, then four updates each followed by a namespace.
    assert_eq!(commits.len(), 11);
    assert_eq!(commits[0].id, head.head_commit.unwrap());
    for pair in commits.windows(2) {
        assert_eq!(pair[0].parents, vec![pair[1].id]);
        assert_eq!(pair[0].seq, pair[1].seq + 1);
    }
    let updates: Vec<String> = commits
        .iter()
        .rev()
        .flat_map(|c| &c.changes)
        .filter(|change| change.op == "update")
        .map(|change| change.metadata_location.clone().unwrap())
        .collect();
    assert_eq!(updates, ["v1", "v2", "v3", "v4"]);
    let found = store
        .tabulars
        .find_tabular(warehouse.id, MAIN_BRANCH, &t.ident)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.version, 4);
}

async fn access_keys_are_listed_and_deleted_per_warehouse(store: Persistence, db: &TestDb) {
    let info = bootstrapped(&store).await;
    let (one, _) = warehouse_in(&store, db, info.default_project_id, "one").await;
    let (two, _) = warehouse_in(&store, db, info.default_project_id, "two").await;
    let key = |id: &str, warehouse: &Warehouse, expires: bool| AccessKey {
        id: id.into(),
        warehouse_id: warehouse.id,
        description: Some(format!("key {id} ✓")),
        created_at: now(),
        expires_at: expires.then(|| now() + chrono::Duration::hours(1)),
        created_by: Some("idp~alice".into()),
    };
    let a = key("FLAAAAAAAAAAAAAAAAA1", &one, false);
    let b = key("FLAAAAAAAAAAAAAAAAA2", &one, true);
    let c = key("FLAAAAAAAAAAAAAAAAA3", &two, false);
    for k in [&a, &b, &c] {
        store.access_keys.create_access_key(k, &[]).await.unwrap();
    }
    let found = store
        .access_keys
        .get_access_key(&b.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.warehouse_id, one.id);
    assert_eq!(found.description, b.description);
    assert_eq!(found.created_by.as_deref(), Some("idp~alice"));
    assert_eq!(
        found.expires_at.map(|t| t.timestamp_micros()),
        b.expires_at.map(|t| t.timestamp_micros())
    );
    let listed: Vec<String> = store
        .access_keys
        .list_access_keys(one.id)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(listed, [a.id.clone(), b.id.clone()]);
    // A key is deleted through its own warehouse only.
    let err = store
        .access_keys
        .delete_access_key(two.id, &a.id, &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound(Entity::AccessKey));
    store
        .access_keys
        .delete_access_key(one.id, &a.id, &[])
        .await
        .unwrap();
    assert!(
        store
            .access_keys
            .get_access_key(&a.id)
            .await
            .unwrap()
            .is_none()
    );
    // A key for a missing warehouse is refused; a duplicate id too.
    let orphan = AccessKey {
        warehouse_id: WarehouseId::new(),
        ..key("FLAAAAAAAAAAAAAAAAA4", &one, false)
    };
    assert_eq!(
        store
            .access_keys
            .create_access_key(&orphan, &[])
            .await
            .unwrap_err()
            .kind,
        ErrorKind::NotFound(Entity::Warehouse)
    );
    assert!(store.access_keys.create_access_key(&c, &[]).await.is_err());
    // Deleting a warehouse removes its keys.
    store
        .warehouses
        .delete_warehouse(two.id, false, &[])
        .await
        .unwrap();
    assert!(
        store
            .access_keys
            .get_access_key(&c.id)
            .await
            .unwrap()
            .is_none()
    );
}

async fn overlapping_table_locations_are_found(store: Persistence, db: &TestDb) {
    let info = bootstrapped(&store).await;
    let (warehouse, main) = warehouse_in(&store, db, info.default_project_id, "wh").await;
    let (other_wh, other_main) = warehouse_in(&store, db, info.default_project_id, "wh2").await;
    for (wh, branch) in [(&warehouse, &main), (&other_wh, &other_main)] {
        store
            .namespaces
            .create_namespace(&namespace(wh, branch, &["ns"]), meta())
            .await
            .unwrap();
    }
    let mut t = tabular(&warehouse, &main, &["ns"], "t", TabularKind::Table);
    t.location = "s3://b/ns/t_%x".into();
    let mut v = tabular(&warehouse, &main, &["ns"], "v", TabularKind::View);
    v.location = "s3://b/ns/v".into();
    let mut elsewhere = tabular(&other_wh, &other_main, &["ns"], "e", TabularKind::Table);
    elsewhere.location = "s3://b/ns/e".into();
    store
        .tabulars
        .commit_tabulars(
            main.id,
            &[TabularChange::Create(t.clone()), TabularChange::Create(v)],
            meta(),
        )
        .await
        .unwrap();
    store
        .tabulars
        .commit_tabulars(other_main.id, &[TabularChange::Create(elsewhere)], meta())
        .await
        .unwrap();
    let find = |prefixes: &[&str], inside: Option<&'static str>, uuid: Option<uuid::Uuid>| {
        let store = store.clone();
        let prefixes: Vec<String> = prefixes.iter().map(|p| p.to_string()).collect();
        let warehouse = warehouse.id;
        async move {
            store
                .tabulars
                .overlapping_table(warehouse, &prefixes, inside, uuid)
                .await
                .unwrap()
        }
    };
    // Inside t: one of the prefixes is t's location.
    assert_eq!(
        find(
            &["s3://b/ns", "s3://b/ns/t_%x", "s3://b/ns/t_%x/in"],
            None,
            None
        )
        .await,
        Some("s3://b/ns/t_%x".to_string())
    );
    // Containing t (the check below a location), with LIKE metacharacters taken literally.
    let below = find(&["s3://b/ns"], Some("s3://b/ns"), None).await;
    assert!(
        matches!(
            below.as_deref(),
            Some("s3://b/ns/t_%x") | Some("s3://b/ns/v")
        ),
        "{below:?}"
    );
    assert_eq!(
        find(&["s3://b/ns/t"], Some("s3://b/ns/t"), None).await,
        None
    );
    assert_eq!(
        find(&["s3://b/ns/t_"], Some("s3://b/ns/t_"), None).await,
        None
    );
    // A table's own claims are not its overlap; its folder stays claimed for anyone else.
    assert_eq!(find(&["s3://b/ns/t_%x"], None, Some(t.uuid)).await, None);
    assert_eq!(
        find(&["s3://b/ns/t_%x"], None, Some(uuid::Uuid::new_v4())).await,
        Some("s3://b/ns/t_%x".to_string())
    );
    // Views count too; other warehouses' tables do not.
    assert_eq!(
        find(&["s3://b/ns/v"], None, None).await,
        Some("s3://b/ns/v".to_string())
    );
    assert_eq!(
        find(&["s3://b/ns/e"], Some("s3://b/ns/e"), None).await,
        None
    );
    assert_eq!(find(&[], None, None).await, None);
}

async fn claimed_folders_never_overlap(store: Persistence, db: &TestDb) {
    let info = bootstrapped(&store).await;
    let (warehouse, main) = warehouse_in(&store, db, info.default_project_id, "wh").await;
    store
        .namespaces
        .create_namespace(&namespace(&warehouse, &main, &["ns"]), meta())
        .await
        .unwrap();
    let at = |name: &str, location: &str| {
        let mut t = tabular(&warehouse, &main, &["ns"], name, TabularKind::Table);
        t.location = location.to_string();
        t
    };
    // Two tables of one commit, one inside the other: the commit fails whole.
    let err = store
        .tabulars
        .commit_tabulars(
            main.id,
            &[
                TabularChange::Create(at("outer", "s3://b/x")),
                TabularChange::Create(at("inner", "s3://b/x/y")),
            ],
            meta(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadRequest, "{err:?}");
    assert!(
        store
            .tabulars
            .get_tabular(main.id, &at("outer", "").ident)
            .await
            .unwrap()
            .is_none()
    );
    // Racing commits claiming nested folders: exactly one wins, whatever the order.
    for round in 0..5 {
        let a = at(&format!("a{round}"), &format!("s3://b/r{round}"));
        let b = at(&format!("b{round}"), &format!("s3://b/r{round}/inner"));
        let (ca, cb) = ([TabularChange::Create(a)], [TabularChange::Create(b)]);
        let (ra, rb) = tokio::join!(
            store.tabulars.commit_tabulars(main.id, &ca, meta()),
            store.tabulars.commit_tabulars(main.id, &cb, meta()),
        );
        assert!(ra.is_ok() != rb.is_ok(), "round {round}: {ra:?} / {rb:?}");
    }
    // A sibling whose name only extends another's is not inside it; moving a table into another's
    // folder is refused, moving without claiming is a plain update.
    let t = at("t", "s3://b/t");
    let t2 = at("t2", "s3://b/t2");
    store
        .tabulars
        .commit_tabulars(
            main.id,
            &[
                TabularChange::Create(t.clone()),
                TabularChange::Create(t2.clone()),
            ],
            meta(),
        )
        .await
        .unwrap();
    let mut moved = update_of(&t2, 0, "s3://b/t2/metadata/00001.metadata.json");
    if let TabularChange::Update {
        location,
        claims_location,
        ..
    } = &mut moved
    {
        *location = "s3://b/t/inside".into();
        *claims_location = Some(warehouse.id);
    }
    let err = store
        .tabulars
        .commit_tabulars(main.id, &[moved], meta())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadRequest);
}

/// A table keeps its folders claimed after it moves on or is dropped: no other table may be
/// placed there (early check and final check in the commit). A purge releases the claims first,
/// only while no line holds a row of the UUID; released claims still hold their folders (and
/// refuse a create of that UUID) until keys vended for them have expired, or are taken back.
async fn folders_stay_claimed_until_released(store: Persistence, db: &TestDb) {
    let info = bootstrapped(&store).await;
    let (warehouse, main) = warehouse_in(&store, db, info.default_project_id, "wh").await;
    store
        .namespaces
        .create_namespace(&namespace(&warehouse, &main, &["mv"]), meta())
        .await
        .unwrap();
    let at = |name: &str, location: &str| {
        let mut t = tabular(&warehouse, &main, &["mv"], name, TabularKind::Table);
        t.location = location.to_string();
        t
    };
    let x = at("x", "s3://demo/mv/x1");
    store
        .tabulars
        .commit_tabulars(main.id, &[TabularChange::Create(x.clone())], meta())
        .await
        .unwrap();
    // x moves to x2 (set-location): x1 stays x's.
    let mut moved = update_of(&x, 0, "s3://demo/mv/x2/metadata/00001.metadata.json");
    if let TabularChange::Update {
        location,
        claims_location,
        ..
    } = &mut moved
    {
        *location = "s3://demo/mv/x2".into();
        *claims_location = Some(warehouse.id);
    }
    store
        .tabulars
        .commit_tabulars(main.id, &[moved], meta())
        .await
        .unwrap();
    let folders = |kind| {
        let store = store.clone();
        let warehouse = warehouse.id;
        async move {
            store
                .tabulars
                .claimed_folders(warehouse, x.uuid, kind)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        folders(Some(TabularKind::Table)).await,
        ["s3://demo/mv/x1", "s3://demo/mv/x2"]
    );
    assert!(folders(Some(TabularKind::View)).await.is_empty());
    let early = |location: &'static str, uuid: uuid::Uuid| {
        let store = store.clone();
        let warehouse = warehouse.id;
        async move {
            store
                .tabulars
                .overlapping_table(
                    warehouse,
                    &["s3://demo/mv".to_string(), location.to_string()],
                    Some(location),
                    Some(uuid),
                )
                .await
                .unwrap()
        }
    };
    let create = |name: &'static str, location: &'static str| {
        let store = store.clone();
        let t = at(name, location);
        async move {
            store
                .tabulars
                .commit_tabulars(main.id, &[TabularChange::Create(t)], meta())
                .await
        }
    };
    let stranger = uuid::Uuid::new_v4();
    // The old folder, and one inside it, are taken for anyone but x itself.
    assert_eq!(
        early("s3://demo/mv/x1", stranger).await.as_deref(),
        Some("s3://demo/mv/x1")
    );
    assert_eq!(early("s3://demo/mv/x1", x.uuid).await, None);
    for location in ["s3://demo/mv/x1", "s3://demo/mv/x1/deeper", "s3://demo/mv"] {
        let err = create("y", location).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadRequest, "{location}: {err:?}");
    }
    assert!(
        store
            .tabulars
            .recorded_version(
                warehouse.id,
                x.uuid,
                "s3://demo/mv/x2/metadata/00001.metadata.json"
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .tabulars
            .recorded_version(
                warehouse.id,
                stranger,
                "s3://demo/mv/x2/metadata/00001.metadata.json"
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .tabulars
            .uuid_known(warehouse.id, x.uuid, Some(TabularKind::Table))
            .await
            .unwrap()
    );
    assert!(
        !store
            .tabulars
            .uuid_known(warehouse.id, stranger, None)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .tabulars
            .lines_holding(warehouse.id, x.uuid)
            .await
            .unwrap(),
        [main.id]
    );
    // While x has a row, a purge does not begin.
    assert_eq!(
        store
            .tabulars
            .release_for_purge(warehouse.id, x.uuid)
            .await
            .unwrap(),
        None
    );
    // Dropped (not purged): still claimed.
    store
        .tabulars
        .drop_tabular(
            main.id,
            &x.ident,
            TabularKind::Table,
            meta(),
            &Default::default(),
        )
        .await
        .unwrap();
    assert!(early("s3://demo/mv/x2", stranger).await.is_some());
    assert_eq!(
        create("y", "s3://demo/mv/x2").await.unwrap_err().kind,
        ErrorKind::BadRequest
    );
    // A purge begins: the folders it returns are still held, and x cannot come back meanwhile.
    let mut released = store
        .tabulars
        .release_for_purge(warehouse.id, x.uuid)
        .await
        .unwrap()
        .unwrap();
    released.sort();
    assert_eq!(released, ["s3://demo/mv/x1", "s3://demo/mv/x2"]);
    assert!(folders(None).await.is_empty());
    assert!(early("s3://demo/mv/x1", stranger).await.is_some());
    assert_eq!(
        create("y", "s3://demo/mv/x1").await.unwrap_err().kind,
        ErrorKind::BadRequest
    );
    let mut again = x.clone();
    again.id = TabularId::new();
    again.location = "s3://demo/mv/x3".into();
    let err = store
        .tabulars
        .commit_tabulars(main.id, &[TabularChange::Create(again)], meta())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict, "{err:?}");
    // A purge that failed takes its claims back.
    store
        .tabulars
        .restore_claims(warehouse.id, x.uuid)
        .await
        .unwrap();
    assert_eq!(folders(None).await.len(), 2);
    store
        .tabulars
        .release_for_purge(warehouse.id, x.uuid)
        .await
        .unwrap()
        .unwrap();
    // Once keys vended for them have expired, released folders are free.
    db.execute("UPDATE folder_claims SET released_at = 0 WHERE released_at IS NOT NULL")
        .await;
    assert_eq!(early("s3://demo/mv/x1", stranger).await, None);
    create("y", "s3://demo/mv/x1").await.unwrap();
    // A purge that fails after that cannot take back claims that no longer held: y has x1 now.
    store
        .tabulars
        .restore_claims(warehouse.id, x.uuid)
        .await
        .unwrap();
    assert!(
        folders(None).await.is_empty(),
        "a stale claim came back over another table's folder"
    );

    // A dropped view's claims go at once, and only the view's.
    let mut v = tabular(&warehouse, &main, &["mv"], "v", TabularKind::View);
    v.location = "s3://demo/mv/v".into();
    store
        .tabulars
        .commit_tabulars(main.id, &[TabularChange::Create(v.clone())], meta())
        .await
        .unwrap();
    assert!(
        !store
            .tabulars
            .release_view_claims(warehouse.id, v.uuid)
            .await
            .unwrap()
    );
    assert_eq!(
        create("w", "s3://demo/mv/v/inside").await.unwrap_err().kind,
        ErrorKind::BadRequest
    );
    store
        .tabulars
        .drop_tabular(
            main.id,
            &v.ident,
            TabularKind::View,
            meta(),
            &Default::default(),
        )
        .await
        .unwrap();
    assert!(
        store
            .tabulars
            .release_view_claims(warehouse.id, v.uuid)
            .await
            .unwrap()
    );
    create("w", "s3://demo/mv/v/inside").await.unwrap();
}

/// Creates claim their folders under a warehouse lock and take the line's commit record; racing
/// creates in one namespace must all land (on PostgreSQL they once deadlocked: the table row's
/// foreign key share-locked the ref row that the commit record then locked for update).
async fn concurrent_creates_in_one_namespace_all_land(store: Persistence, db: &TestDb) {
    let info = bootstrapped(&store).await;
    let (warehouse, main) = warehouse_in(&store, db, info.default_project_id, "wh").await;
    store
        .namespaces
        .create_namespace(&namespace(&warehouse, &main, &["ns"]), meta())
        .await
        .unwrap();
    let before = current(&store, &warehouse, MAIN_BRANCH).await.head_seq;
    let mut tasks = Vec::new();
    for i in 0..32 {
        let store = store.clone();
        let mut t = tabular(
            &warehouse,
            &main,
            &["ns"],
            &format!("t{i}"),
            TabularKind::Table,
        );
        t.location = format!("s3://b/ns/t{i}");
        let ref_id = main.id;
        tasks.push(tokio::spawn(async move {
            store
                .tabulars
                .commit_tabulars(ref_id, &[TabularChange::Create(t)], meta())
                .await
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        task.await
            .unwrap()
            .unwrap_or_else(|e| panic!("create {i}: {e:?}"));
    }
    let listed = store
        .tabulars
        .list_tabulars(
            main.id,
            &ns(&["ns"]),
            TabularKind::Table,
            &PageRequest {
                after: None,
                limit: None,
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 32);
    assert_eq!(
        current(&store, &warehouse, MAIN_BRANCH).await.head_seq,
        before + 32,
        "one commit each"
    );
}

fn fork_of(r: &Ref) -> ForkPoint {
    ForkPoint {
        line: r.id,
        seq: r.head_seq,
        commit: r.head_commit.unwrap(),
        generation: r.head_generation,
    }
}

async fn current(store: &Persistence, warehouse: &Warehouse, name: &str) -> Ref {
    store
        .warehouses
        .get_ref(warehouse.id, name)
        .await
        .unwrap()
        .unwrap()
}

async fn every_change_is_recorded_as_a_commit(store: Persistence, db: &TestDb) {
    let info = bootstrapped(&store).await;
    let (wh, main) = warehouse_in(&store, db, info.default_project_id, "lake").await;
    store
        .namespaces
        .create_namespace(&namespace(&wh, &main, &["ns"]), meta())
        .await
        .unwrap();
    let t = tabular(&wh, &main, &["ns"], "t", TabularKind::Table);
    store
        .tabulars
        .commit_tabulars(main.id, &[TabularChange::Create(t.clone())], meta())
        .await
        .unwrap();
    // A failed change records nothing.
    let stale = store
        .tabulars
        .commit_tabulars(
            main.id,
            &[update_of(&t, 7, "file:///wh/t/metadata/x.json")],
            meta(),
        )
        .await
        .unwrap_err();
    assert_eq!(stale.kind, ErrorKind::CommitConflict);
    store
        .tabulars
        .commit_tabulars(
            main.id,
            &[update_of(&t, 0, "file:///wh/t/metadata/1.json")],
            meta(),
        )
        .await
        .unwrap();
    let head = current(&store, &wh, "main").await;
    assert_eq!(head.head_seq, 3);
    assert_eq!(head.head_generation, 3);
    let (commits, next) = store
        .refs
        .list_commits(main.id, head.head_seq, 10)
        .await
        .unwrap();
    assert_eq!(next, None);
    assert_eq!(commits.len(), 4, "three changes and the root");
    assert_eq!(commits[0].id, head.head_commit.unwrap());
    assert_eq!(commits[0].seq, 3);
    assert_eq!(commits[0].author, "store-suite");
    assert_eq!(commits[0].changes[0].op, "update");
    assert_eq!(
        commits[0].changes[0].metadata_location.as_deref(),
        Some("file:///wh/t/metadata/1.json")
    );
    assert_eq!(commits[1].changes[0].op, "create");
    assert_eq!(commits[2].changes[0].kind, "namespace");
    assert_eq!(commits[3].parents, vec![]);
    assert_eq!(commits[0].parents, vec![commits[1].id]);
    // Paging continues exactly where the last page ended.
    let (first, next) = store.refs.list_commits(main.id, 3, 2).await.unwrap();
    assert_eq!(first.len(), 2);
    let (line, seq) = next.unwrap();
    let (rest, end) = store.refs.list_commits(line, seq, 10).await.unwrap();
    assert_eq!(end, None);
    assert_eq!(rest.len(), 2);
    assert_eq!(rest[0].id, commits[2].id);
    assert_eq!(
        store
            .refs
            .get_commit(wh.id, commits[1].id)
            .await
            .unwrap()
            .unwrap(),
        commits[1]
    );
}

async fn branches_inherit_until_they_diverge(store: Persistence, db: &TestDb) {
    let info = bootstrapped(&store).await;
    let (wh, main) = warehouse_in(&store, db, info.default_project_id, "lake").await;
    store
        .namespaces
        .create_namespace(&namespace(&wh, &main, &["ns"]), meta())
        .await
        .unwrap();
    let t = tabular(&wh, &main, &["ns"], "t", TabularKind::Table);
    let u = tabular(&wh, &main, &["ns"], "u", TabularKind::Table);
    store
        .tabulars
        .commit_tabulars(
            main.id,
            &[
                TabularChange::Create(t.clone()),
                TabularChange::Create(u.clone()),
            ],
            meta(),
        )
        .await
        .unwrap();
    let main_now = current(&store, &wh, "main").await;
    let dev = store
        .refs
        .create_ref(
            wh.id,
            "dev",
            RefKind::Branch,
            &fork_of(&main_now),
            now(),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(dev.parent, Some((main.id, main_now.head_seq)));
    // The branch sees main's rows (the live row, metadata included).
    let seen = store
        .tabulars
        .get_tabular(dev.id, &t.ident)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.id, t.id);
    assert_eq!(seen.metadata, t.metadata);
    // Main moves on: the branch sees the fork-point version, from history (no metadata).
    store
        .tabulars
        .commit_tabulars(
            main.id,
            &[update_of(&t, 0, "file:///wh/t/metadata/main.json")],
            meta(),
        )
        .await
        .unwrap();
    let seen = store
        .tabulars
        .get_tabular(dev.id, &t.ident)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.metadata_location, t.metadata_location);
    assert!(seen.metadata.is_empty());
    assert_eq!(seen.version, 0);
    // The branch's first commit copies the row onto it; main keeps its own.
    store
        .tabulars
        .commit_tabulars(
            dev.id,
            &[update_of(&u, 0, "file:///wh/u/metadata/dev.json")],
            meta(),
        )
        .await
        .unwrap();
    let on_dev = store
        .tabulars
        .get_tabular(dev.id, &u.ident)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(on_dev.id, u.id);
    assert_eq!(on_dev.ref_id, dev.id);
    assert_eq!(on_dev.version, 1);
    assert_eq!(on_dev.metadata_location, "file:///wh/u/metadata/dev.json");
    let on_main = store
        .tabulars
        .get_tabular(main.id, &u.ident)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(on_main.id, u.id);
    assert_eq!(on_main.metadata_location, u.metadata_location);
    // A commit on the branch that expects the row's old id or version loses.
    let lost = store
        .tabulars
        .commit_tabulars(
            dev.id,
            &[update_of(&u, 0, "file:///wh/u/metadata/again.json")],
            meta(),
        )
        .await
        .unwrap_err();
    assert_eq!(lost.kind, ErrorKind::CommitConflict);
    // Dropping an inherited table leaves a tombstone; main keeps it.
    store
        .tabulars
        .drop_tabular(
            dev.id,
            &t.ident,
            TabularKind::Table,
            meta(),
            &Default::default(),
        )
        .await
        .unwrap();
    assert!(
        store
            .tabulars
            .get_tabular(dev.id, &t.ident)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .tabulars
            .get_tabular(main.id, &t.ident)
            .await
            .unwrap()
            .is_some()
    );
    let listed = store
        .tabulars
        .list_tabulars(
            dev.id,
            &ns(&["ns"]),
            TabularKind::Table,
            &PageRequest::all(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(listed.items, vec!["u".to_string()]);
    // The same name can be created again on the branch.
    let mut again = tabular(&wh, &dev, &["ns"], "t", TabularKind::Table);
    again.location = "file:///wh/t-again".into();
    store
        .tabulars
        .commit_tabulars(dev.id, &[TabularChange::Create(again.clone())], meta())
        .await
        .unwrap();
    let listed = store
        .tabulars
        .list_tabulars(
            dev.id,
            &ns(&["ns"]),
            TabularKind::Table,
            &PageRequest {
                limit: Some(1),
                after: None,
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(listed.items, vec!["t".to_string()]);
    assert_eq!(listed.next.as_deref(), Some("t"));
    // Namespaces: created on the branch only, inherited ones updated by copy.
    let dev_ns = namespace(&wh, &dev, &["ns", "child"]);
    store
        .namespaces
        .create_namespace(&dev_ns, meta())
        .await
        .unwrap();
    assert!(
        store
            .namespaces
            .get_namespace(main.id, &ns(&["ns", "child"]))
            .await
            .unwrap()
            .is_none()
    );
    let mut updates = Properties::new();
    updates.insert("owner".into(), "dev".into());
    store
        .namespaces
        .update_namespace_properties(dev.id, &ns(&["ns"]), &updates, &[], now(), meta())
        .await
        .unwrap();
    let main_ns = store
        .namespaces
        .get_namespace(main.id, &ns(&["ns"]))
        .await
        .unwrap()
        .unwrap();
    assert!(!main_ns.properties.contains_key("owner"));
    let dev_ns = store
        .namespaces
        .get_namespace(dev.id, &ns(&["ns"]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dev_ns.properties["owner"], "dev");
    // A namespace that holds inherited tables is not empty on the branch.
    let err = store
        .namespaces
        .drop_namespace(dev.id, &ns(&["ns", "child"]), false, meta())
        .await;
    assert!(err.is_ok());
    let err = store
        .namespaces
        .drop_namespace(dev.id, &ns(&["ns"]), false, meta())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotEmpty(Entity::Namespace));
}

async fn first_writes_on_a_branch_race_fairly(store: Persistence, db: &TestDb) {
    let info = bootstrapped(&store).await;
    let (wh, main) = warehouse_in(&store, db, info.default_project_id, "lake").await;
    store
        .namespaces
        .create_namespace(&namespace(&wh, &main, &["ns"]), meta())
        .await
        .unwrap();
    let t = tabular(&wh, &main, &["ns"], "t", TabularKind::Table);
    store
        .tabulars
        .commit_tabulars(main.id, &[TabularChange::Create(t.clone())], meta())
        .await
        .unwrap();
    let main_now = current(&store, &wh, "main").await;
    let dev = store
        .refs
        .create_ref(
            wh.id,
            "dev",
            RefKind::Branch,
            &fork_of(&main_now),
            now(),
            &[],
        )
        .await
        .unwrap();
    // Eight writers all make the branch's first commit to the same inherited table, at once:
    // exactly one wins, the others lose their compare-and-swap, and the branch's history has
    // exactly one commit.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        let change = update_of(&t, 0, &format!("file:///wh/t/metadata/{i}.json"));
        let line = dev.id;
        tasks.push(tokio::spawn(async move {
            store
                .tabulars
                .commit_tabulars(line, &[change], meta())
                .await
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => won += 1,
            Err(e) => assert_eq!(e.kind, ErrorKind::CommitConflict, "{}", e.message),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(current(&store, &wh, "dev").await.head_seq, 1);
    let main_t = store
        .tabulars
        .get_tabular(main.id, &t.ident)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(main_t.version, 0);
}

async fn merges_compare_and_swap_the_target_head(store: Persistence, db: &TestDb) {
    let info = bootstrapped(&store).await;
    let (wh, main) = warehouse_in(&store, db, info.default_project_id, "lake").await;
    let main_now = current(&store, &wh, "main").await;
    let dev = store
        .refs
        .create_ref(
            wh.id,
            "dev",
            RefKind::Branch,
            &fork_of(&main_now),
            now(),
            &[],
        )
        .await
        .unwrap();
    store
        .namespaces
        .create_namespace(&namespace(&wh, &dev, &["from_dev"]), meta())
        .await
        .unwrap();
    let dev_now = current(&store, &wh, "dev").await;
    let change = MergeChange::Namespace {
        ident: ns(&["from_dev"]),
        properties: Some(Properties::new()),
    };
    // The target moved since the merge was computed: nothing is written.
    let moved = store
        .refs
        .merge_into(
            main.id,
            main_now.head_seq + 1,
            std::slice::from_ref(&change),
            (dev_now.head_commit.unwrap(), dev_now.head_generation),
            meta(),
        )
        .await
        .unwrap_err();
    assert_eq!(moved.kind, ErrorKind::CommitConflict);
    assert!(
        store
            .namespaces
            .get_namespace(main.id, &ns(&["from_dev"]))
            .await
            .unwrap()
            .is_none()
    );
    let commit = store
        .refs
        .merge_into(
            main.id,
            main_now.head_seq,
            &[change],
            (dev_now.head_commit.unwrap(), dev_now.head_generation),
            meta(),
        )
        .await
        .unwrap();
    assert!(
        store
            .namespaces
            .get_namespace(main.id, &ns(&["from_dev"]))
            .await
            .unwrap()
            .is_some()
    );
    let merged = store.refs.get_commit(wh.id, commit).await.unwrap().unwrap();
    assert_eq!(
        merged.parents,
        vec![main_now.head_commit.unwrap(), dev_now.head_commit.unwrap()]
    );
    assert_eq!(merged.generation, dev_now.head_generation + 1);
}

async fn tags_resets_and_commit_points(store: Persistence, db: &TestDb) {
    let info = bootstrapped(&store).await;
    let (wh, main) = warehouse_in(&store, db, info.default_project_id, "lake").await;
    store
        .namespaces
        .create_namespace(&namespace(&wh, &main, &["one"]), meta())
        .await
        .unwrap();
    let at_one = current(&store, &wh, "main").await;
    let tag = store
        .refs
        .create_ref(wh.id, "v1", RefKind::Tag, &fork_of(&at_one), now(), &[])
        .await
        .unwrap();
    store
        .namespaces
        .create_namespace(&namespace(&wh, &main, &["two"]), meta())
        .await
        .unwrap();
    let listed = |r: floe::model::RefId| {
        let store = store.clone();
        async move {
            store
                .namespaces
                .list_namespaces(r, None, &PageRequest::all(), None)
                .await
                .unwrap()
                .items
                .len()
        }
    };
    assert_eq!(listed(tag.id).await, 1);
    assert_eq!(listed(main.id).await, 2);
    // A tag takes no commits.
    let refused = store
        .namespaces
        .create_namespace(&namespace(&wh, &tag, &["x"]), meta())
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Conflict);
    assert_eq!(listed(tag.id).await, 1);
    // A commit reads as of itself, through one hidden ref made once.
    let point = store
        .refs
        .commit_ref(wh.id, at_one.head_commit.unwrap())
        .await
        .unwrap()
        .unwrap();
    let again = store
        .refs
        .commit_ref(wh.id, at_one.head_commit.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(point.id, again.id);
    assert_eq!(listed(point.id).await, 1);
    assert!(
        store
            .refs
            .commit_ref(wh.id, CommitId::new())
            .await
            .unwrap()
            .is_none()
    );
    let names: Vec<String> = store
        .refs
        .list_refs(wh.id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["main", "v1"]);
    // A reset branch is a new line; its old line's commits stay.
    let main_now = current(&store, &wh, "main").await;
    let dev = store
        .refs
        .create_ref(
            wh.id,
            "dev",
            RefKind::Branch,
            &fork_of(&main_now),
            now(),
            &[],
        )
        .await
        .unwrap();
    store
        .namespaces
        .create_namespace(&namespace(&wh, &dev, &["three"]), meta())
        .await
        .unwrap();
    let dev_now = current(&store, &wh, "dev").await;
    let reset = store
        .refs
        .reset_branch(wh.id, "dev", &fork_of(&at_one), now(), &[])
        .await
        .unwrap();
    assert_ne!(reset.id, dev.id);
    assert_eq!(listed(reset.id).await, 1);
    assert!(
        store
            .refs
            .get_commit(wh.id, dev_now.head_commit.unwrap())
            .await
            .unwrap()
            .is_some()
    );
    // The old line takes no more commits.
    let refused = store
        .namespaces
        .create_namespace(&namespace(&wh, &dev, &["four"]), meta())
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Conflict);
    store
        .refs
        .delete_ref(wh.id, "v1", RefKind::Tag, &[])
        .await
        .unwrap();
    let gone = store
        .refs
        .delete_ref(wh.id, "v1", RefKind::Tag, &[])
        .await
        .unwrap_err();
    assert_eq!(gone.kind, ErrorKind::NotFound(Entity::Ref));
}

async fn a_callers_relationships_follow_nested_and_mapped_roles(store: Persistence, _db: &TestDb) {
    let rel =
        |object: (&str, &str), relation: &str, subject: (&str, &str, Option<&str>)| Relationship {
            object_type: object.0.into(),
            object_id: object.1.into(),
            relation: relation.into(),
            subject_type: subject.0.into(),
            subject_id: subject.1.into(),
            subject_relation: subject.2.map(str::to_string),
        };
    let (outer, inner, mapped, cycle) = ("r-outer", "r-inner", "r-mapped", "r-cycle");
    store
        .authz
        .write_relationships(
            &[
                // alice is in inner; inner's assignees are in outer; cycle and outer contain
                // each other.
                rel(("role", inner), "assignee", ("user", "idp~alice", None)),
                rel(
                    ("role", outer),
                    "assignee",
                    ("role", inner, Some("assignee")),
                ),
                rel(
                    ("role", cycle),
                    "assignee",
                    ("role", outer, Some("assignee")),
                ),
                rel(
                    ("role", outer),
                    "assignee",
                    ("role", cycle, Some("assignee")),
                ),
                // What each holds.
                rel(
                    ("warehouse", "w1"),
                    "select",
                    ("role", outer, Some("assignee")),
                ),
                rel(
                    ("warehouse", "w2"),
                    "modify",
                    ("role", mapped, Some("assignee")),
                ),
                rel(
                    ("namespace", "w1/a"),
                    "ownership",
                    ("user", "idp~alice", None),
                ),
                rel(
                    ("namespace", "w1/b"),
                    "ownership",
                    ("user", "idp~bob", None),
                ),
                rel(
                    ("table", "w1/t"),
                    "select",
                    ("role", "r-else", Some("assignee")),
                ),
            ],
            &[],
            now(),
            &[],
        )
        .await
        .unwrap();
    let objects = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(k, i)| (k.to_string(), i.to_string()))
            .collect()
    };
    let (mut roles, grants) = store
        .authz
        .caller_relationships("idp~alice", &[], None)
        .await
        .unwrap();
    roles.sort();
    assert_eq!(roles, ["r-cycle", "r-inner", "r-outer"]);
    let mut held: Vec<(String, String, String)> = grants
        .iter()
        .map(|r| {
            (
                r.object_type.clone(),
                r.object_id.clone(),
                r.relation.clone(),
            )
        })
        .collect();
    held.sort();
    assert_eq!(
        held,
        [
            (
                "namespace".to_string(),
                "w1/a".to_string(),
                "ownership".to_string()
            ),
            (
                "warehouse".to_string(),
                "w1".to_string(),
                "select".to_string()
            ),
        ]
    );
    // A mapped role (from the token) counts, and objects narrow the read.
    let (_, grants) = store
        .authz
        .caller_relationships(
            "idp~alice",
            &[mapped.to_string()],
            Some(&objects(&[("warehouse", "w2"), ("namespace", "w1/b")])),
        )
        .await
        .unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(
        (grants[0].object_id.as_str(), grants[0].relation.as_str()),
        ("w2", "modify")
    );
    // Nothing for an empty object list, or for a stranger.
    let (_, none) = store
        .authz
        .caller_relationships("idp~alice", &[], Some(&[]))
        .await
        .unwrap();
    assert!(none.is_empty());
    let (roles, none) = store
        .authz
        .caller_relationships("idp~nobody", &[], None)
        .await
        .unwrap();
    assert!(roles.is_empty() && none.is_empty());
}

async fn tables_are_located_by_uuid_on_every_line(store: Persistence, db: &TestDb) {
    let info = bootstrapped(&store).await;
    let (wh, main) = warehouse_in(&store, db, info.default_project_id, "wh").await;
    for levels in [&["ns"][..], &["other"][..]] {
        store
            .namespaces
            .create_namespace(&namespace(&wh, &main, levels), meta())
            .await
            .unwrap();
    }
    let t = tabular(&wh, &main, &["ns"], "t", TabularKind::Table);
    let v = tabular(&wh, &main, &["ns"], "v", TabularKind::View);
    store
        .tabulars
        .commit_tabulars(
            main.id,
            &[
                TabularChange::Create(t.clone()),
                TabularChange::Create(v.clone()),
            ],
            meta(),
        )
        .await
        .unwrap();
    let stranger = uuid::Uuid::now_v7();
    let mut found = store
        .tabulars
        .locate_tabulars(main.id, &[t.uuid, v.uuid, stranger])
        .await
        .unwrap();
    found.sort_by_key(|(ident, _, _)| ident.name.clone());
    assert_eq!(
        found,
        [
            (t.ident.clone(), t.uuid, TabularKind::Table),
            (v.ident.clone(), v.uuid, TabularKind::View),
        ]
    );
    // A branch: renamed there, it is found under its new name there and its old one on main.
    let main_now = current(&store, &wh, "main").await;
    let dev = store
        .refs
        .create_ref(
            wh.id,
            "dev",
            RefKind::Branch,
            &fork_of(&main_now),
            now(),
            &[],
        )
        .await
        .unwrap();
    let moved = TabularIdent::new(ns(&["other"]), "moved".into()).unwrap();
    store
        .tabulars
        .rename_tabular(dev.id, &t.ident, &moved, TabularKind::Table, meta())
        .await
        .unwrap();
    let on_dev = store
        .tabulars
        .locate_tabulars(dev.id, &[t.uuid])
        .await
        .unwrap();
    assert_eq!(on_dev, [(moved, t.uuid, TabularKind::Table)]);
    let on_main = store
        .tabulars
        .locate_tabulars(main.id, &[t.uuid])
        .await
        .unwrap();
    assert_eq!(on_main, [(t.ident.clone(), t.uuid, TabularKind::Table)]);
    // Dropped on the branch: not there, still on main.
    store
        .tabulars
        .drop_tabular(
            dev.id,
            &v.ident,
            TabularKind::View,
            meta(),
            &Default::default(),
        )
        .await
        .unwrap();
    assert!(
        store
            .tabulars
            .locate_tabulars(dev.id, &[v.uuid])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .tabulars
            .locate_tabulars(main.id, &[v.uuid])
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn lists_filter_by_name_in_the_query(store: Persistence, db: &TestDb) {
    let info = bootstrapped(&store).await;
    let (wh, main) = warehouse_in(&store, db, info.default_project_id, "wh").await;
    for name in ["a", "b", "c", "d"] {
        store
            .namespaces
            .create_namespace(&namespace(&wh, &main, &[name]), meta())
            .await
            .unwrap();
    }
    let tables: Vec<Tabular> = ["t1", "t2", "t3", "t4"]
        .iter()
        .map(|n| tabular(&wh, &main, &["a"], n, TabularKind::Table))
        .collect();
    store
        .tabulars
        .commit_tabulars(
            main.id,
            &tables
                .iter()
                .cloned()
                .map(TabularChange::Create)
                .collect::<Vec<_>>(),
            meta(),
        )
        .await
        .unwrap();
    let main_now = current(&store, &wh, "main").await;
    let dev = store
        .refs
        .create_ref(
            wh.id,
            "dev",
            RefKind::Branch,
            &fork_of(&main_now),
            now(),
            &[],
        )
        .await
        .unwrap();
    let only: Vec<String> = ["b", "d", "zz"].iter().map(|s| s.to_string()).collect();
    let two = PageRequest {
        after: None,
        limit: Some(1),
    };
    let some_tables: Vec<String> = ["t2", "t4", "gone"].iter().map(|s| s.to_string()).collect();
    for line in [main.id, dev.id] {
        let page = store
            .namespaces
            .list_namespaces(line, None, &two, Some(&only))
            .await
            .unwrap();
        assert_eq!(page.items, [ns(&["b"])]);
        let rest = store
            .namespaces
            .list_namespaces(
                line,
                None,
                &PageRequest {
                    after: page.next,
                    limit: Some(1),
                },
                Some(&only),
            )
            .await
            .unwrap();
        assert_eq!((rest.items, rest.next), (vec![ns(&["d"])], None));
        assert!(
            store
                .namespaces
                .list_namespaces(line, None, &PageRequest::all(), Some(&[]))
                .await
                .unwrap()
                .items
                .is_empty()
        );
        let listed = store
            .tabulars
            .list_tabulars(
                line,
                &ns(&["a"]),
                TabularKind::Table,
                &PageRequest::all(),
                Some(&some_tables),
            )
            .await
            .unwrap();
        assert_eq!(listed.items, ["t2", "t4"]);
        assert!(
            store
                .tabulars
                .list_tabulars(
                    line,
                    &ns(&["a"]),
                    TabularKind::Table,
                    &PageRequest::all(),
                    Some(&[])
                )
                .await
                .unwrap()
                .items
                .is_empty()
        );
    }
}

/// What maintenance must not delete: every version of a table other lines recorded, and the
/// maintained line's version at each point a branch or tag forked from it (directly or through a
/// branch that never changed the table).
async fn versions_other_refs_read_are_found(store: Persistence, db: &TestDb) {
    let info = bootstrapped(&store).await;
    let (wh, main) = warehouse_in(&store, db, info.default_project_id, "lake").await;
    store
        .namespaces
        .create_namespace(&namespace(&wh, &main, &["ns"]), meta())
        .await
        .unwrap();
    let t = tabular(&wh, &main, &["ns"], "t", TabularKind::Table);
    let other = tabular(&wh, &main, &["ns"], "other", TabularKind::Table);
    store
        .tabulars
        .commit_tabulars(
            main.id,
            &[
                TabularChange::Create(t.clone()),
                TabularChange::Create(other.clone()),
            ],
            meta(),
        )
        .await
        .unwrap();
    let file = |n: &str| format!("file:///wh/t/metadata/{n}.metadata.json");
    let mut version = 0;
    let mut commit_main = |name: &'static str| {
        let (store, t, file) = (store.clone(), t.clone(), file(name));
        version += 1;
        let expected = version - 1;
        async move {
            store
                .tabulars
                .commit_tabulars(main.id, &[update_of(&t, expected, &file)], meta())
                .await
                .unwrap();
        }
    };
    let elsewhere = |line: floe::model::RefId| {
        let store = store.clone();
        async move {
            let mut found = store
                .refs
                .versions_elsewhere(wh.id, line, t.uuid)
                .await
                .unwrap();
            found.sort();
            found
        }
    };
    commit_main("m1").await;
    // Only main: nothing else reads the table.
    assert!(elsewhere(main.id).await.is_empty());
    let at = current(&store, &wh, "main").await;
    store
        .refs
        .create_ref(wh.id, "v1", RefKind::Tag, &fork_of(&at), now(), &[])
        .await
        .unwrap();
    commit_main("m2").await;
    commit_main("m3").await;
    let at = current(&store, &wh, "main").await;
    let dev = store
        .refs
        .create_ref(wh.id, "dev", RefKind::Branch, &fork_of(&at), now(), &[])
        .await
        .unwrap();
    // A change on the branch to another table does not make it read another version of `t`.
    store
        .tabulars
        .commit_tabulars(
            dev.id,
            &[update_of(&other, 0, "file:///wh/other/metadata/dev.json")],
            meta(),
        )
        .await
        .unwrap();
    commit_main("m4").await;
    // The tag's point (m1) and the branch's fork point (m3); not m2, m4 or the first version.
    assert_eq!(elsewhere(main.id).await, [file("m1"), file("m3")]);
    // The branch changes the table: its own version counts too.
    store
        .tabulars
        .commit_tabulars(dev.id, &[update_of(&t, 3, &file("d1"))], meta())
        .await
        .unwrap();
    // A branch forked from `dev` after that, never changing `t`, reads dev's version.
    let at = current(&store, &wh, "dev").await;
    store
        .refs
        .create_ref(wh.id, "feat", RefKind::Branch, &fork_of(&at), now(), &[])
        .await
        .unwrap();
    assert_eq!(
        elsewhere(main.id).await,
        [file("d1"), file("m1"), file("m3")]
    );
    // Seen from the branch: every version main recorded, and its own where `feat` forked.
    let mut expected = vec![
        t.metadata_location.clone(),
        file("m1"),
        file("m2"),
        file("m3"),
        file("m4"),
        file("d1"),
    ];
    expected.sort();
    assert_eq!(elsewhere(dev.id).await, expected);
    // Another table's versions never count.
    assert!(
        store
            .refs
            .versions_elsewhere(wh.id, main.id, uuid::Uuid::new_v4())
            .await
            .unwrap()
            .is_empty()
    );
}

/// Idempotency keys: one claim wins; a duplicate sees it running, then its answer; a request of
/// another fingerprint is told apart; a lease past its end is taken over (by the same request
/// only), and the old owner can no longer end it; released keys run again; expired ones go.
async fn idempotency_keys_are_claimed_once(store: Persistence, _db: &TestDb) {
    use floe::model::idempotency::{KeyClaim, KeyState, StoredResponse};
    let keys = &store.idempotency;
    let claim = |owner: &str, fingerprint: &str, now: i64| KeyClaim {
        principal: "alice".into(),
        key: "017f22e2-79b0-7cc3-98c4-dc0c0c07398f".into(),
        fingerprint: fingerprint.into(),
        owner: owner.into(),
        now,
        lease_until: now + 100,
        expires_at: now + 10_000,
    };
    assert!(matches!(
        keys.claim_key(&claim("a", "f1", 1000)).await.unwrap(),
        KeyState::Claimed
    ));
    match keys.claim_key(&claim("b", "f1", 1010)).await.unwrap() {
        KeyState::Running { fingerprint } => assert_eq!(fingerprint, "f1"),
        other => panic!("{other:?}"),
    }
    // Another caller's key of the same value is its own.
    let mut bob = claim("c", "f9", 1010);
    bob.principal = "bob".into();
    assert!(matches!(
        keys.claim_key(&bob).await.unwrap(),
        KeyState::Claimed
    ));
    // Past the lease: another request with another fingerprint cannot take it over; the same
    // request can, and the first owner then ends nothing.
    match keys.claim_key(&claim("b", "f2", 1200)).await.unwrap() {
        KeyState::Running { fingerprint } => assert_eq!(fingerprint, "f1"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        keys.claim_key(&claim("b", "f1", 1200)).await.unwrap(),
        KeyState::Claimed
    ));
    let answer = StoredResponse {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: b"{\"ok\":true}".to_vec(),
    };
    let key = "017f22e2-79b0-7cc3-98c4-dc0c0c07398f";
    assert!(!keys.finish_key("alice", key, "a", &answer).await.unwrap());
    assert!(keys.finish_key("alice", key, "b", &answer).await.unwrap());
    match keys.claim_key(&claim("d", "f1", 1300)).await.unwrap() {
        KeyState::Done {
            fingerprint,
            response,
        } => {
            assert_eq!(fingerprint, "f1");
            assert_eq!(response, answer);
        }
        other => panic!("{other:?}"),
    }
    // A released key (no final answer) is claimed anew.
    keys.release_key("bob", key, "c").await.unwrap();
    assert!(matches!(
        keys.claim_key(&bob).await.unwrap(),
        KeyState::Claimed
    ));
    // Expired keys are forgotten: by a sweep, or by the next claim of the key.
    assert_eq!(keys.expire_keys(5_000).await.unwrap(), 0);
    assert!(matches!(
        keys.claim_key(&claim("e", "f3", 20_000)).await.unwrap(),
        KeyState::Claimed
    ));
    assert_eq!(keys.expire_keys(100_000).await.unwrap(), 2);
}

/// Scan plans: held as submitted, finished once (a cancelled plan is not finished after), read
/// back as written, invisible once expired, and expired ones are forgotten by the next insert.
async fn scan_plans_are_held_until_they_expire(store: Persistence, db: &TestDb) {
    use floe::model::scan::{PlanState, ScanPlan};
    let plans = &store.scan_plans;
    let table = uuid::Uuid::new_v4();
    let plan = |id: &str, created_at: i64| ScanPlan {
        id: id.into(),
        table_uuid: table,
        principal: "alice".into(),
        state: PlanState::Submitted,
        detail: None,
        created_at,
        expires_at: created_at + 1_000,
    };
    plans.insert_plan(&plan("p1", 10_000)).await.unwrap();
    assert_eq!(
        plans.get_plan("p1", 10_500).await.unwrap(),
        Some(plan("p1", 10_000))
    );
    assert!(
        plans
            .finish_plan("p1", PlanState::Completed, r#"{"tasks":[]}"#)
            .await
            .unwrap()
    );
    // Once only: a finished plan is not finished again.
    assert!(
        !plans
            .finish_plan("p1", PlanState::Failed, "{}")
            .await
            .unwrap()
    );
    let got = plans.get_plan("p1", 10_500).await.unwrap().unwrap();
    assert_eq!(got.state, PlanState::Completed);
    assert_eq!(got.detail.as_deref(), Some(r#"{"tasks":[]}"#));
    assert_eq!(got.table_uuid, table);

    // A cancelled plan stays cancelled: the planner's late result is dropped.
    plans.insert_plan(&plan("p2", 10_100)).await.unwrap();
    assert!(plans.cancel_plan("p2", 10_200).await.unwrap());
    assert!(
        !plans
            .finish_plan("p2", PlanState::Completed, "{}")
            .await
            .unwrap()
    );
    let got = plans.get_plan("p2", 10_200).await.unwrap().unwrap();
    assert_eq!((got.state, got.detail), (PlanState::Cancelled, None));
    assert!(!plans.cancel_plan("nope", 10_200).await.unwrap());

    // Expired: neither read nor cancelled, and gone after the next insert.
    assert_eq!(plans.get_plan("p1", 11_001).await.unwrap(), None);
    assert!(!plans.cancel_plan("p1", 11_001).await.unwrap());
    plans.insert_plan(&plan("p3", 20_000)).await.unwrap();
    assert_eq!(plans.get_plan("p1", 0).await.unwrap(), None);
    assert_eq!(plans.get_plan("p2", 0).await.unwrap(), None);
    assert!(plans.get_plan("p3", 20_000).await.unwrap().is_some());

    // A warehouse's planning mode: none at first, set, cleared; an unknown warehouse is 404.
    let info = bootstrapped(&store).await;
    let (wh, _) = warehouse_in(&store, db, info.default_project_id, "lake").await;
    assert_eq!(plans.planning_mode(wh.id).await.unwrap(), None);
    plans
        .set_planning_mode(wh.id, Some("server"), &[])
        .await
        .unwrap();
    assert_eq!(
        plans.planning_mode(wh.id).await.unwrap().as_deref(),
        Some("server")
    );
    plans.set_planning_mode(wh.id, None, &[]).await.unwrap();
    assert_eq!(plans.planning_mode(wh.id).await.unwrap(), None);
    let unknown = floe::model::WarehouseId(uuid::Uuid::new_v4());
    assert!(matches!(
        plans.planning_mode(unknown).await.unwrap_err().kind,
        floe::error::ErrorKind::NotFound(_)
    ));
    assert!(plans.set_planning_mode(unknown, None, &[]).await.is_err());
}

/// Searching a ref by part of a name: every namespace, any case, `%` and `_` taken literally,
/// paged by namespace then name; a branch sees what it inherits and not what it dropped.
async fn tables_are_searched_by_name_across_namespaces(store: Persistence, db: &TestDb) {
    let info = bootstrapped(&store).await;
    let (wh, main) = warehouse_in(&store, db, info.default_project_id, "found").await;
    for levels in [&["a"][..], &["b"][..], &["b", "deep"][..]] {
        store
            .namespaces
            .create_namespace(&namespace(&wh, &main, levels), meta())
            .await
            .unwrap();
    }
    let made = [
        (&["a"][..], "Orders", TabularKind::Table),
        (&["a"][..], "order_lines", TabularKind::Table),
        (&["a"][..], "customers", TabularKind::Table),
        (&["b"][..], "orders_v", TabularKind::View),
        (&["b", "deep"][..], "old_orders", TabularKind::Table),
        (&["b"][..], "orderXlines", TabularKind::Table),
    ];
    let changes: Vec<TabularChange> = made
        .iter()
        .map(|(levels, name, kind)| TabularChange::Create(tabular(&wh, &main, levels, name, *kind)))
        .collect();
    store
        .tabulars
        .commit_tabulars(main.id, &changes, meta())
        .await
        .unwrap();
    let search = |line: floe::model::RefId, needle: &'static str, after: Option<String>, limit| {
        let store = store.clone();
        async move {
            store
                .tabulars
                .search_tabulars(line, needle, &PageRequest { after, limit })
                .await
                .unwrap()
        }
    };
    let names = |page: &floe::model::Page<(TabularIdent, uuid::Uuid, TabularKind)>| {
        page.items
            .iter()
            .map(|(ident, _, kind)| format!("{}:{}:{}", ident.namespace, ident.name, kind.as_str()))
            .collect::<Vec<_>>()
    };
    // Any case, every namespace, by namespace then name.
    let all = search(main.id, "ORDER", None, None).await;
    assert_eq!(
        names(&all),
        [
            "a:Orders:table",
            "a:order_lines:table",
            "b:orderXlines:table",
            "b:orders_v:view",
            "b.deep:old_orders:table",
        ]
    );
    assert_eq!(all.next, None);
    // `_` matches only itself.
    assert_eq!(
        names(&search(main.id, "r_l", None, None).await),
        ["a:order_lines:table"]
    );
    assert!(search(main.id, "%", None, None).await.items.is_empty());
    // Pages of two, continuing after the last key.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = search(main.id, "order", after, Some(2)).await;
        assert!(page.items.len() <= 2);
        seen.extend(names(&page));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, names(&all));
    // A branch: inherits main's, sees its own drop and its own create, not main's later ones.
    let main_now = current(&store, &wh, "main").await;
    let dev = store
        .refs
        .create_ref(
            wh.id,
            "dev",
            RefKind::Branch,
            &fork_of(&main_now),
            now(),
            &[],
        )
        .await
        .unwrap();
    let old = TabularIdent::new(ns(&["b", "deep"]), "old_orders".into()).unwrap();
    store
        .tabulars
        .drop_tabular(
            dev.id,
            &old,
            TabularKind::Table,
            meta(),
            &Default::default(),
        )
        .await
        .unwrap();
    store
        .tabulars
        .commit_tabulars(
            dev.id,
            &[TabularChange::Create(tabular(
                &wh,
                &dev,
                &["a"],
                "new_orders",
                TabularKind::Table,
            ))],
            meta(),
        )
        .await
        .unwrap();
    store
        .tabulars
        .commit_tabulars(
            main.id,
            &[TabularChange::Create(tabular(
                &wh,
                &main,
                &["b"],
                "late_orders",
                TabularKind::Table,
            ))],
            meta(),
        )
        .await
        .unwrap();
    let on_dev = search(dev.id, "orders", None, None).await;
    assert_eq!(
        names(&on_dev),
        ["a:Orders:table", "a:new_orders:table", "b:orders_v:view"]
    );
    let first = search(dev.id, "orders", None, Some(1)).await;
    assert_eq!(names(&first), ["a:Orders:table"]);
    let second = search(dev.id, "orders", first.next, Some(2)).await;
    assert_eq!(names(&second), ["a:new_orders:table", "b:orders_v:view"]);
    assert_eq!(second.next, None);
    assert_eq!(
        names(&search(main.id, "orders", None, None).await),
        [
            "a:Orders:table",
            "b:late_orders:table",
            "b:orders_v:view",
            "b.deep:old_orders:table",
        ]
    );
}
