#!/usr/bin/env python3
"""The synthetic cache of scripts/bench-lifecycle: rows written into a metadata index that a
pullthrough of this tree created (schema 4), and the few store files the benchmark needs.

    bench_lifecycle_data.py generate DB STORE SERVED_TAGS [REPOS BLOBS]
    bench_lifecycle_data.py files STORE LIST
    bench_lifecycle_data.py count DB

generate: REPOS repositories (default 10,000; half on quay.io, half on ghcr.io), each with ten
tags, one manifest per tag (100,000), and BLOBS blobs (default 1,000,000) shaped like images:
  - every manifest has its own config and 8 or 9 layers of its own, and 3 base layers shared
    with the manifests of the same tag in the other repositories of its family (ten
    repositories, on both registries), so shared content is reference-counted across repositories and registries;
  - every repository links what its manifests reach (a pull records the link), with the tag's
    last use; every tag was confirmed now and every repository is public, so a hit needs no
    upstream;
  - tag v9 of every repository was last used 40 days ago and everything else within 20 days: a
    rule `**: expire_unused_after: 30d` removes a tenth of the references and what only they
    reach;
  - the manifest bodies are real OCI manifests whose digests are their SHA-256. The store gets
    the files of the first SERVED_TAGS tags of quay.io that stay (v0..v8), for the hits to serve,
    and SERVED_TAGS goes to stdout as "repository tag" lines. Of the objects the rule removes,
    STORE/expiring.list names each (files recreates them as empty files before each run, so the
    collection unlinks a real file for every object it removes; the other objects have no file).
files: creates the empty files of LIST (one digest per line) under STORE, as the store lays
out its blobs.
count: "tags manifests blobs links" rows of DB, one line.

Deterministic (seeded), standard library only.
"""

import hashlib
import json
import os
import random
import sqlite3
import sys
import time

DAY = 86400
TAGS_PER_REPO = 10
SHARED_PER_FAMILY = 30  # base layers of one family: 3 per tag index
REPOS_PER_FAMILY = 10
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def store_path(store, digest):
    hexpart = digest.split(":", 1)[1]
    return os.path.join(store, "blobs", "sha256", hexpart[:2], hexpart)


def write_file(store, digest, data):
    path = store_path(store, digest)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def generate(db_path, store, served, repos=10000, blob_count=1000000):
    manifests_total = repos * TAGS_PER_REPO
    families = max(1, repos // REPOS_PER_FAMILY)
    shared_total = families * SHARED_PER_FAMILY
    unique_total = blob_count - manifests_total - shared_total  # layers of one manifest only
    if unique_total < 8 * manifests_total:
        raise SystemExit(f"bench_lifecycle_data: {blob_count} blobs is too few for {repos} repositories")
    rng = random.Random(20261207)
    now = int(time.time())

    blob_digest = [digest_of(b"bench-lifecycle blob %d" % i) for i in range(blob_count)]
    blob_size = [rng.randint(1024, 1024 * 1024) if i < manifests_total else rng.randint(4096, 64 << 20)
                 for i in range(blob_count)]
    blob_used = [0] * blob_count  # latest use through any reference (a pull touches every blob)

    def last_used(tag_index):
        return now - 40 * DAY if tag_index == TAGS_PER_REPO - 1 else now - rng.randint(0, 20 * DAY)

    # Unique layers: 9 for the first manifests, 8 for the rest, using every unique blob once.
    extra = unique_total - 8 * manifests_total
    next_unique = manifests_total
    manifests, contents, tags, links, repositories = [], [], [], [], []
    served_list, expiring = [], []
    for r in range(repos):
        registry = "quay.io" if r < repos // 2 else "ghcr.io"
        repository = f"bench/r{r:05d}"
        family = r % families
        repositories.append((registry, repository, 1, now))
        repo_links = {}
        for t in range(TAGS_PER_REPO):
            m = r * TAGS_PER_REPO + t
            count = 9 if m < extra else 8
            layers = list(range(next_unique, next_unique + count))
            next_unique += count
            base = manifests_total + unique_total + family * SHARED_PER_FAMILY
            layers = [base + 3 * t + k for k in range(3)] + layers
            body = json.dumps({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": blob_digest[m], "size": blob_size[m]},
                "layers": [{"mediaType": OCI_LAYER, "digest": blob_digest[b], "size": blob_size[b]}
                           for b in layers],
            }, separators=(",", ":")).encode()
            digest = digest_of(body)
            used = last_used(t)
            manifests.append((digest, OCI_MANIFEST, len(body), 1))
            tag = f"v{t}"
            tags.append((registry, repository, tag, 15, digest, now, used))
            reached = [m] + layers
            for b in reached:
                contents.append((digest, blob_digest[b]))
                blob_used[b] = max(blob_used[b], used)
                repo_links[blob_digest[b]] = max(repo_links.get(blob_digest[b], 0), used)
            repo_links[digest] = used
            if t == TAGS_PER_REPO - 1:
                expiring.append(digest)
                expiring.extend(blob_digest[b] for b in reached)
            elif registry == "quay.io" and len(served_list) < served:
                write_file(store, digest, body)
                served_list.append((repository, tag))
        links.extend((registry, repository, d, u) for d, u in repo_links.items())
    assert next_unique == manifests_total + unique_total

    blobs = [(blob_digest[i], blob_size[i], now - 60 * DAY, blob_used[i]) for i in range(blob_count)]
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA synchronous = OFF")
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version != 4:
        raise SystemExit(f"bench_lifecycle_data: {db_path} has schema {version}, this generator writes 4")
    with db:
        for table in ("manifests", "blobs", "contents", "tags", "links", "repositories", "pins",
                      "removals"):
            db.execute(f"DELETE FROM {table}")
        db.executemany("INSERT INTO manifests (digest, media_type, size, contents_known) "
                       "VALUES (?, ?, ?, ?)", sorted(manifests))
        db.executemany("INSERT INTO blobs (digest, size, stored_at, last_access) VALUES (?, ?, ?, ?)",
                       sorted(blobs))
        db.executemany("INSERT INTO contents (manifest, digest) VALUES (?, ?)", sorted(set(contents)))
        db.executemany("INSERT INTO tags (registry, repository, tag, types, digest, confirmed_at, "
                       "last_used) VALUES (?, ?, ?, ?, ?, ?, ?)", sorted(tags))
        db.executemany("INSERT INTO links (registry, repository, digest, last_used) "
                       "VALUES (?, ?, ?, ?)", sorted(links))
        db.executemany("INSERT INTO repositories (registry, repository, public, checked_at) "
                       "VALUES (?, ?, ?, ?)", repositories)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    with open(os.path.join(store, "expiring.list"), "w", encoding="ascii") as f:
        f.writelines(d + "\n" for d in sorted(set(expiring)))
    for repository, tag in served_list:
        print(repository, tag)


def files(store, list_path):
    with open(list_path, encoding="ascii") as f:
        for line in f:
            digest = line.strip()
            if digest and not os.path.exists(store_path(store, digest)):
                write_file(store, digest, b"")


def count(db_path):
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    print(*(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("tags", "manifests", "blobs", "links")))


def main(argv):
    if len(argv) >= 5 and argv[1] == "generate":
        numbers = [int(a) for a in argv[4:7]]
        generate(argv[2], argv[3], *numbers)
        return 0
    if len(argv) == 4 and argv[1] == "files":
        files(argv[2], argv[3])
        return 0
    if len(argv) == 3 and argv[1] == "count":
        count(argv[2])
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
