"""PyIceberg 0.12 against Floe: the quickstart snippet works unchanged, and namespaces behave as
PyIceberg expects (its own exception types for each error)."""

import pytest
from pyiceberg.catalog import load_catalog
from pyiceberg.exceptions import (
    NamespaceAlreadyExistsError,
    NamespaceNotEmptyError,
    NoSuchNamespaceError,
)


def catalog_for(floe, warehouse="demo"):
    # Exactly the snippet `floe serve` prints.
    return load_catalog("floe", type="rest", uri=floe.uri, warehouse=warehouse)


def test_namespaces_round_trip(floe):
    catalog = catalog_for(floe)
    catalog.create_namespace("sales", {"owner": "data-eng"})
    catalog.create_namespace(("sales", "eu"))
    assert ("sales",) in catalog.list_namespaces()
    assert catalog.list_namespaces("sales") == [("sales", "eu")]
    assert catalog.load_namespace_properties("sales") == {"owner": "data-eng"}
    assert catalog.namespace_exists(("sales", "eu"))
    assert not catalog.namespace_exists(("sales", "us"))

    summary = catalog.update_namespace_properties(
        "sales", removals={"owner", "absent"}, updates={"team": "bi"}
    )
    assert summary.updated == ["team"]
    assert summary.removed == ["owner"]
    assert summary.missing == ["absent"]
    assert catalog.load_namespace_properties("sales") == {"team": "bi"}

    with pytest.raises(NamespaceAlreadyExistsError):
        catalog.create_namespace("sales")
    with pytest.raises(NamespaceNotEmptyError):
        catalog.drop_namespace("sales")
    with pytest.raises(NoSuchNamespaceError):
        catalog.load_namespace_properties("nowhere")

    catalog.drop_namespace(("sales", "eu"))
    catalog.drop_namespace("sales")
    assert ("sales",) not in catalog.list_namespaces()


def test_state_is_shared_between_clients(floe):
    writer = catalog_for(floe)
    reader = catalog_for(floe)
    writer.create_namespace("shared")
    assert reader.namespace_exists("shared")


def test_unknown_warehouse_is_refused(floe):
    with pytest.raises(Exception, match="does not exist"):
        catalog_for(floe, warehouse="missing")
