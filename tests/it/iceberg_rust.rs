//! iceberg-rust's own REST client (`iceberg-catalog-rest`, the version matching the `iceberg`
//! crate Floe uses) drives Floe unchanged: namespaces, create, a fast append through its
//! transaction API (data written with the crate's Parquet writer), load and scan back, rename,
//! drop. The warehouse is a plain local one, which the crate's local file IO reads and writes.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use futures::TryStreamExt as _;
use iceberg::io::LocalFsStorageFactory;
use iceberg::spec::{DataFileFormat, NestedField, PrimitiveType, Schema, Type};
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use iceberg::{Catalog, CatalogBuilder, NamespaceIdent, TableCreation, TableIdent};
use iceberg_catalog_rest::{
    REST_CATALOG_PROP_URI, REST_CATALOG_PROP_WAREHOUSE, RestCatalogBuilder,
};
use parquet::file::properties::WriterProperties;

use crate::common::{Backend, TestApp};

on_both_backends!(iceberg_rust_client_round_trip);

async fn append(
    table: &iceberg::table::Table,
    catalog: &dyn Catalog,
    ids: &[i64],
) -> iceberg::table::Table {
    let schema = table.metadata().current_schema().clone();
    let arrow_schema = Arc::new(iceberg::arrow::schema_to_arrow_schema(&schema).unwrap());
    let batch = RecordBatch::try_new(
        arrow_schema,
        vec![
            Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef,
            Arc::new(StringArray::from(
                ids.iter().map(|i| format!("row {i}")).collect::<Vec<_>>(),
            )) as ArrayRef,
        ],
    )
    .unwrap();
    let rolling = RollingFileWriterBuilder::new_with_default_file_size(
        ParquetWriterBuilder::new(WriterProperties::default(), schema),
        table.file_io().clone(),
        DefaultLocationGenerator::new(table.metadata()).unwrap(),
        DefaultFileNameGenerator::new(
            format!("part-{}", uuid::Uuid::now_v7()),
            None,
            DataFileFormat::Parquet,
        ),
    );
    let mut writer = DataFileWriterBuilder::new(rolling)
        .build(None)
        .await
        .unwrap();
    writer.write(batch).await.unwrap();
    let files = writer.close().await.unwrap();
    let tx = Transaction::new(table);
    let tx = tx.fast_append().add_data_files(files).apply(tx).unwrap();
    tx.commit(catalog).await.unwrap()
}

async fn ids_of(table: &iceberg::table::Table) -> Vec<i64> {
    let batches: Vec<RecordBatch> = table
        .scan()
        .select_all()
        .build()
        .unwrap()
        .to_arrow()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let mut ids: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            b.column_by_name("id")
                .unwrap()
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .values()
                .to_vec()
        })
        .collect();
    ids.sort();
    ids
}

async fn iceberg_rust_client_round_trip(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_local_warehouse("rusty").await;
    let catalog = RestCatalogBuilder::default()
        .with_storage_factory(Arc::new(LocalFsStorageFactory))
        .load(
            "floe",
            HashMap::from([
                (REST_CATALOG_PROP_URI.to_string(), app.url("/catalog")),
                (REST_CATALOG_PROP_WAREHOUSE.to_string(), "rusty".to_string()),
            ]),
        )
        .await
        .unwrap();

    // Namespaces.
    let ns = NamespaceIdent::from_strs(["lake", "raw"]).unwrap();
    catalog
        .create_namespace(&NamespaceIdent::new("lake".into()), HashMap::new())
        .await
        .unwrap();
    catalog
        .create_namespace(&ns, HashMap::from([("owner".into(), "rust".into())]))
        .await
        .unwrap();
    let children = catalog
        .list_namespaces(Some(&NamespaceIdent::new("lake".into())))
        .await
        .unwrap();
    assert_eq!(children, vec![ns.clone()]);
    assert_eq!(
        catalog.get_namespace(&ns).await.unwrap().properties()["owner"],
        "rust"
    );
    assert!(catalog.namespace_exists(&ns).await.unwrap());

    // Create, append twice through the transaction API, load, scan.
    let schema = Schema::builder()
        .with_fields(vec![
            NestedField::required(1, "id", Type::Primitive(PrimitiveType::Long)).into(),
            NestedField::optional(2, "name", Type::Primitive(PrimitiveType::String)).into(),
        ])
        .build()
        .unwrap();
    let created = catalog
        .create_table(
            &ns,
            TableCreation::builder()
                .name("events".into())
                .schema(schema)
                .build(),
        )
        .await
        .unwrap();
    let ident = TableIdent::new(ns.clone(), "events".into());
    assert_eq!(created.identifier(), &ident);
    let table = append(&created, &catalog, &[1, 2, 3]).await;
    let table = append(&table, &catalog, &[4, 5]).await;
    assert_eq!(table.metadata().snapshots().count(), 2);
    let loaded = catalog.load_table(&ident).await.unwrap();
    assert_eq!(
        loaded.metadata().current_snapshot_id(),
        table.metadata().current_snapshot_id()
    );
    assert_eq!(ids_of(&loaded).await, vec![1, 2, 3, 4, 5]);
    assert_eq!(catalog.list_tables(&ns).await.unwrap(), vec![ident.clone()]);

    // A commit based on a stale version is refused and nothing is lost: the client's
    // transaction re-reads and retries, or fails cleanly.
    let stale = append(&created, &catalog, &[6]).await;
    assert_eq!(ids_of(&stale).await, vec![1, 2, 3, 4, 5, 6]);

    // Rename, then drop.
    let renamed = TableIdent::new(ns.clone(), "events_v2".into());
    catalog.rename_table(&ident, &renamed).await.unwrap();
    assert!(!catalog.table_exists(&ident).await.unwrap());
    let moved = catalog.load_table(&renamed).await.unwrap();
    assert_eq!(ids_of(&moved).await, vec![1, 2, 3, 4, 5, 6]);
    catalog.drop_table(&renamed).await.unwrap();
    assert!(!catalog.table_exists(&renamed).await.unwrap());
    assert!(catalog.list_tables(&ns).await.unwrap().is_empty());
    catalog.drop_namespace(&ns).await.unwrap();
    assert!(!catalog.namespace_exists(&ns).await.unwrap());
}
