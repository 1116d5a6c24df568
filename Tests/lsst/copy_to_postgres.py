"""Copies a fixture butler repository into a new one whose registry is on PostgreSQL (issue 18).

    python copy_to_postgres.py SOURCE_REPO DEST_REPO POSTGRES_URL NAMESPACE

The new repository is made with `registry.db: POSTGRES_URL` and `registry.namespace: NAMESPACE`
(the password comes from PGPASSWORD or ~/.pgpass, never the URL); every dataset of SOURCE_REPO's
collections is transferred (same UUIDs, files copied, dimension records and dataset types with
them), and its CHAINED collections are redefined, so a graph built against the source runs
against the copy unchanged.
"""
import sys

import lsst.pipe.base.tests.mocks  # noqa: F401  (registers the _mock_* storage classes)
from lsst.daf.butler import Butler, CollectionType, Config

source_path, dest_path, url, namespace = sys.argv[1:5]
seed = Config({"registry": {"db": url, "namespace": namespace}})
Butler.makeRepo(dest_path, config=seed)
with Butler.from_config(source_path) as source, Butler.from_config(dest_path, writeable=True) as dest:
    infos = source.collections.query_info("*")
    refs = []
    for info in infos:
        if info.type == CollectionType.RUN:
            refs.extend(source.registry.queryDatasets(..., collections=info.name))
    dest.transfer_from(source, refs, transfer="copy", register_dataset_types=True, transfer_dimensions=True)
    for info in infos:
        if info.type == CollectionType.CHAINED:
            dest.collections.register(info.name, CollectionType.CHAINED)
            dest.collections.redefine_chain(info.name, list(info.children))
    print(f"{len(refs)} datasets in {sum(i.type == CollectionType.RUN for i in infos)} runs copied to {dest_path}")
