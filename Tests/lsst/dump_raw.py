#!/usr/bin/env python3
"""Print the quanta of a predicted quantum graph (.qg) from the raw file, with no LSST code:
only zipfile, zstandard and json. Same output as export_graph.py (pipe_base's API), so the two
can be diffed; this file is the spec for a reader in another language (Swift).

    python Tests/lsst/dump_raw.py GRAPH.qg [--records]

Needs only the `zstandard` module (the LSST venv has it).

The file (pipe_base 30.2026.x, header "version": 1, "graph_type": "predicted")
-------------------------------------------------------------------------------
A ZIP archive, every member STORED (method 0); quantum_datasets.mb is written with zip64
extra fields, so take sizes and offsets from the central directory. Members, in file order:

  header.json.zst          zstd frame -> JSON object (HeaderModel): version, graph_type,
                           inputs [input collections, chains flattened], output (CHAINED
                           collection or null), output_run, user, timestamp, command, metadata,
                           int_size (8), n_quanta, n_datasets, n_task_quanta {label: n},
                           provenance_dataset_id
  compression_dict         only with >= 512 quanta: a raw zstd dictionary. When present EVERY
                           .zst member and every block in quantum_datasets.mb was compressed
                           with it -- the header too, although the header comes first in the
                           archive -- so load it before decompressing anything.
  pipeline_graph.json.zst  tasks, dataset types, and the dimension universe config
  thin_graph.json.zst      {"quanta": {label: [{"quantum_id", "data_coordinate"}]},
                           "edges": [[predecessor_id, successor_id], ...]}
  dimension_data.json.zst  dimension records {element: [[values...], ...]} (not needed here)
  init_quanta.json.zst     list of "init quanta" (config/packages init-outputs), not per quantum
  quantum_datasets.mb      concatenated blocks: [length: int_size bytes, big-endian][zstd frame
                           of one quantum's JSON], one per quantum
  quanta.addr              u8 int_size | n_rows (int_size BE) | n_addresses (int_size BE) |
                           n_rows x (16-byte UUID | index (int_size) | n_addresses x (offset,
                           size)); rows sorted by UUID as a 128-bit big-endian integer; offset is
                           the block's start in quantum_datasets.mb and size includes the
                           int_size length prefix

Data coordinates are lists of values only. Their dimension names come from the dimension universe
(pipeline_graph.json "dimensions"): required dimensions, then implied ones, each in universe
order -- see universe_order() and coordinate_keys() below.
"""

from __future__ import annotations

import json
import signal
import sys
import uuid
import zipfile

import zstandard

NULL_STRING = "__NULL_STRING__"  # daf_butler's stand-in for None in serialized datastore records


def universe_order(universe: dict) -> dict[str, int]:
    """Rank of every dimension in the universe's order.

    daf_butler builds the universe in waves: each wave takes every element (and skypix system)
    whose `requires` and `implies` are all already built, sorts those names lexicographically,
    and builds them in that order. A skypix system (e.g. "htm") becomes its dimensions
    htm1..htm24 (min_level..max_level) at its place; elements with "keys" are dimensions,
    elements without keys (visit_detector_region...) are not.
    """
    elements = universe["elements"]
    skypix = {name: cfg for name, cfg in universe["skypix"].items() if name != "common"}
    todo: dict[str, set[str]] = {name: set() for name in skypix}
    for name, element in elements.items():
        todo[name] = set(element.get("requires") or ()) | set(element.get("implies") or ())
    order: list[str] = []
    while todo:
        ready = sorted(name for name, deps in todo.items() if not deps & todo.keys())
        if not ready:
            raise ValueError(f"dimension universe has a cycle among {sorted(todo)}")
        for name in ready:
            del todo[name]
            if name in skypix:
                cfg = skypix[name]
                order += [f"{name}{level}" for level in range(cfg.get("min_level", 1), cfg["max_level"] + 1)]
            elif elements[name].get("keys"):
                order.append(name)
    return {name: rank for rank, name in enumerate(order)}


def coordinate_keys(names: list[str], universe: dict, rank: dict[str, int]) -> list[str]:
    """Dimension names of a data coordinate over the full set `names`: a name is implied when
    another name of the set lists it in its "implies"; required names first, then implied,
    each in universe order."""
    elements = universe["elements"]
    implied = {d for other in names for d in (elements.get(other, {}).get("implies") or ()) if d in names}
    ordered = sorted(names, key=rank.__getitem__)
    return [d for d in ordered if d not in implied] + [d for d in ordered if d in implied]


class Graph:
    def __init__(self, path: str):
        self.zf = zipfile.ZipFile(path)
        names = self.zf.namelist()
        for member in ("header.json.zst", "pipeline_graph.json.zst", "thin_graph.json.zst",
                       "quantum_datasets.mb", "quanta.addr"):
            if member not in names:
                raise ValueError(f"not a predicted quantum graph: no member {member}")
        for info in self.zf.infolist():
            if info.compress_type != zipfile.ZIP_STORED:
                raise ValueError(f"member {info.filename} is compressed (method {info.compress_type})")
        cdict = None
        if "compression_dict" in names:
            cdict = zstandard.ZstdCompressionDict(self.zf.read("compression_dict"))
        self.dctx = zstandard.ZstdDecompressor(dict_data=cdict) if cdict else zstandard.ZstdDecompressor()
        self.header = self.member_json("header")
        if self.header.get("graph_type") != "predicted" or self.header.get("version") != 1:
            raise ValueError(f"unsupported graph: graph_type {self.header.get('graph_type')!r}, "
                             f"version {self.header.get('version')!r}")
        self.int_size = self.header["int_size"]
        self.pipeline = self.member_json("pipeline_graph")
        self.thin = self.member_json("thin_graph")
        self.universe = self.pipeline["dimensions"]
        self.rank = universe_order(self.universe)
        # Dataset types list their full dimension set already in universe order: a check on
        # universe_order(). Tasks list theirs alphabetically, so they must be sorted.
        self.dataset_type_keys = {}
        for name, node in self.pipeline["dataset_types"].items():
            dims = node["dimensions"]
            if dims != sorted(dims, key=self.rank.__getitem__):
                raise ValueError(f"dataset type {name}: dimensions {dims} are not in universe order")
            self.dataset_type_keys[name] = coordinate_keys(dims, self.universe, self.rank)
        self.task_keys = {label: coordinate_keys(node["dimensions"], self.universe, self.rank)
                          for label, node in self.pipeline["tasks"].items()}

    def member_json(self, name: str):
        # Frames carry their content size, so a one-shot decompress works.
        return json.loads(self.dctx.decompress(self.zf.read(f"{name}.json.zst")))

    def address_rows(self) -> list[tuple[uuid.UUID, int, list[tuple[int, int]]]]:
        data = self.zf.read("quanta.addr")
        isz = data[0]
        if isz != self.int_size:
            raise ValueError(f"quanta.addr int_size {isz} != header int_size {self.int_size}")
        n_rows = int.from_bytes(data[1:1 + isz], "big")
        n_addresses = int.from_bytes(data[1 + isz:1 + 2 * isz], "big")
        pos = 1 + 2 * isz
        rows = []
        for _ in range(n_rows):
            key = uuid.UUID(bytes=data[pos:pos + 16])
            index = int.from_bytes(data[pos + 16:pos + 16 + isz], "big")
            pos += 16 + isz
            addresses = []
            for _ in range(n_addresses):
                offset = int.from_bytes(data[pos:pos + isz], "big")
                size = int.from_bytes(data[pos + isz:pos + 2 * isz], "big")
                addresses.append((offset, size))
                pos += 2 * isz
            rows.append((key, index, addresses))
        if pos != len(data):
            raise ValueError(f"quanta.addr: {len(data) - pos} trailing bytes")
        return rows

    def quantum_blocks(self):
        """Every quantum block, read through the address table as a random-access reader would."""
        mb = self.zf.read("quantum_datasets.mb")
        isz = self.int_size
        for key, _, addresses in self.address_rows():
            offset, size = addresses[0]  # quantum_datasets.mb is the only multi-block file
            if size == 0:
                continue  # an id with no block in this file
            length = int.from_bytes(mb[offset:offset + isz], "big")
            if length + isz != size:
                raise ValueError(f"quantum {key}: block length {length} + {isz} != address size {size}")
            block = json.loads(self.dctx.decompress(mb[offset + isz:offset + size]))
            if block["quantum_id"] != str(key):
                raise ValueError(f"address row {key} points at quantum {block['quantum_id']}")
            yield block


def dataset_line(d: dict, keys: dict[str, list[str]]) -> dict:
    names = keys[d["dataset_type_name"]]
    values = d["data_coordinate"]
    if len(names) != len(values):
        raise ValueError(f"dataset {d['dataset_id']}: {len(values)} values for dimensions {names}")
    return {"id": d["dataset_id"], "type": d["dataset_type_name"],
            "dataId": [[n, v] for n, v in zip(names, values)], "run": d["run"]}


def records_of(block: dict) -> list[dict]:
    """datastore_records: {datastore: {"dataset_ids": [...], "records": {record class:
    {uuid hex without dashes: {table: [record, ...]}}}}}."""
    result = []
    for datastore, data in block.get("datastore_records", {}).items():
        for by_id in data.get("records", {}).values():
            for hex_id, by_table in by_id.items():
                for records in by_table.values():
                    for r in records:
                        component = r.get("component")
                        result.append({
                            "id": str(uuid.UUID(hex_id)), "datastore": datastore, "path": r["path"],
                            "formatter": r["formatter"], "storageClass": r["storage_class"],
                            "component": None if component == NULL_STRING else component,
                            "checksum": r.get("checksum"), "fileSize": r.get("file_size"),
                        })
    return sorted(result, key=lambda r: (r["id"], r["path"]))


def dump(path: str, with_records: bool) -> list[dict]:
    g = Graph(path)
    thin = {q["quantum_id"]: (label, q["data_coordinate"])
            for label, quanta in g.thin["quanta"].items() for q in quanta}
    lines = []
    for block in g.quantum_blocks():
        label = block["task_label"]
        names = g.task_keys[label]
        values = block["data_coordinate"]
        if len(names) != len(values):
            raise ValueError(f"quantum {block['quantum_id']}: {len(values)} values for dimensions {names}")
        if thin.get(block["quantum_id"]) != (label, values):
            raise ValueError(f"quantum {block['quantum_id']}: thin graph says {thin.get(block['quantum_id'])}")
        sides = []
        for connections in (block["inputs"], block["outputs"]):
            # Keyed by connection name; prerequisites come first among the inputs, and the
            # outputs end with "_metadata" and "_log". A dataset read through two connections
            # appears twice: keep it once.
            refs = {}
            for datasets in connections.values():
                for d in datasets:
                    refs[d["dataset_id"]] = dataset_line(d, g.dataset_type_keys)
            sides.append(sorted(refs.values(), key=lambda r: (r["type"], r["id"])))
        line = {"id": block["quantum_id"], "task": label, "dataId": [[n, v] for n, v in zip(names, values)],
                "inputs": sides[0], "outputs": sides[1]}
        if with_records:
            line["records"] = records_of(block)
        lines.append(line)
    if len(lines) != g.header["n_quanta"] or len(lines) != len(thin):
        raise ValueError(f"{len(lines)} quantum blocks, header says {g.header['n_quanta']}, "
                         f"thin graph has {len(thin)}")
    lines.sort(key=lambda line: uuid.UUID(line["id"]).int)  # already in address-table order
    counts = {label: 0 for label in g.pipeline["tasks"]}
    for line in lines:
        counts[line["task"]] += 1
    lines.append({"summary": {"quanta": len(lines), "outputRun": g.header["output_run"], "tasks": counts}})
    return lines


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends us quietly
    args = [a for a in argv if not a.startswith("--")]
    flags = {a for a in argv if a.startswith("--")}
    if "--help" in flags:
        print(__doc__.strip())
        return 0
    if len(args) != 1 or flags - {"--records"}:
        print("usage: dump_raw.py GRAPH.qg [--records]", file=sys.stderr)
        return 2
    try:
        lines = dump(args[0], "--records" in flags)
    except Exception as err:
        print(f"dump_raw: {args[0]}: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    for line in lines:
        sys.stdout.write(json.dumps(line) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
