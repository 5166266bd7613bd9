#include "proxy/metadata_index.hpp"

#include <algorithm>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string_view>

#include <sqlite3.h>

#include "core/thread_priority.hpp"

namespace pullthrough::proxy {
namespace {

// PRAGMA user_version of the schema below. A later version adds a migration step in
// ensure_schema() and refuses nothing older; a database from a newer build is refused because
// this code cannot know which of its invariants the newer schema relies on.
constexpr std::int64_t kSchemaVersion = 4;

constexpr int kBusyTimeoutMs = 5000;

// No foreign keys: the proxy records what it sees in whatever order requests finish (a tag can be
// confirmed before its manifest is stored, a link names a blob or a manifest), so the tables are
// independent. STRICT (SQLite 3.37+; Debian 12 has 3.40) makes SQLite refuse a value of the wrong
// type instead of storing it; WITHOUT ROWID keeps each table in one b-tree ordered by its key.
constexpr const char* kSchema = R"sql(

CREATE TABLE manifests (
  digest TEXT NOT NULL PRIMARY KEY,
  media_type TEXT NOT NULL,
  size INTEGER NOT NULL CHECK (size >= 0)
) STRICT, WITHOUT ROWID;

CREATE TABLE blobs (
  digest TEXT NOT NULL PRIMARY KEY,
  size INTEGER NOT NULL CHECK (size >= 0),
  stored_at INTEGER NOT NULL,
  last_access INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Retention walks blobs oldest access first; digest makes the order total.
CREATE INDEX blobs_by_last_access ON blobs (last_access, digest);

CREATE TABLE links (
  registry TEXT NOT NULL,
  repository TEXT NOT NULL,
  digest TEXT NOT NULL,
  PRIMARY KEY (registry, repository, digest)
) STRICT, WITHOUT ROWID;

-- Retention asks which repositories still reference a digest before deleting it.
CREATE INDEX links_by_digest ON links (digest);

PRAGMA user_version = 2;
)sql";

// Schema 3: what upstream said about access, kept so that a restart during an outage still
// knows which repositories are public and how each registry challenges clients.
constexpr const char* kAddAccess = R"sql(
CREATE TABLE repositories (
  registry TEXT NOT NULL,
  repository TEXT NOT NULL,
  public INTEGER NOT NULL CHECK (public IN (0, 1)),
  checked_at INTEGER NOT NULL,
  PRIMARY KEY (registry, repository)
) STRICT, WITHOUT ROWID;

CREATE TABLE base_answers (
  registry TEXT NOT NULL PRIMARY KEY,
  status INTEGER NOT NULL,
  challenges TEXT NOT NULL,  -- the WWW-Authenticate values, one per line
  seen_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

PRAGMA user_version = 3;
)sql";

// Schema 4: what retention needs. When each tag and each repository's reference to a digest was
// last used; what each manifest keeps alive (`contents`, filled as manifests are stored, and for
// the manifests of older versions by RegistryCache's back-fill at start, which `contents_known`
// tracks); pins; and the journal of objects whose rows are gone and whose bytes are being
// removed, which the next start finishes after a crash. Content of an older version counts as
// used at the upgrade, so no rule expires it before its full duration has passed.
constexpr const char* kAddLifecycle = R"sql(
ALTER TABLE tags ADD COLUMN last_used INTEGER NOT NULL DEFAULT 0;
UPDATE tags SET last_used = max(confirmed_at, CAST(strftime('%s', 'now') AS INTEGER));
ALTER TABLE links ADD COLUMN last_used INTEGER NOT NULL DEFAULT 0;
UPDATE links SET last_used = CAST(strftime('%s', 'now') AS INTEGER);
ALTER TABLE manifests ADD COLUMN contents_known INTEGER NOT NULL DEFAULT 0
  CHECK (contents_known IN (0, 1));

CREATE TABLE contents (
  manifest TEXT NOT NULL,
  digest TEXT NOT NULL,
  PRIMARY KEY (manifest, digest)
) STRICT, WITHOUT ROWID;

CREATE TABLE pins (
  pattern TEXT NOT NULL PRIMARY KEY,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,  -- 0: never
  source TEXT NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE removals (
  digest TEXT NOT NULL PRIMARY KEY,
  queued_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- A removal deletes the tags that name the manifest it removes.
CREATE INDEX tags_by_digest ON tags (digest);

PRAGMA user_version = 4;
)sql";

// Version 1 keyed tags by name only; its mappings were all made with every type accepted.
constexpr const char* kMigrateFrom1 = R"sql(
INSERT INTO tags_v2 (registry, repository, tag, types, digest, confirmed_at)
  SELECT registry, repository, tag, 15, digest, confirmed_at FROM tags;
DROP TABLE tags;
ALTER TABLE tags_v2 RENAME TO tags;
PRAGMA user_version = 2;
)sql";

// The tags table of schema 2, created as `name`. A tag maps to a digest per set of accepted
// manifest types (`types`, a ManifestTypeSet): upstream answers a client that accepts fewer
// types with another manifest.
std::string create_tags_table(std::string_view name) {
  return "CREATE TABLE " + std::string(name) + R"sql( (
  registry TEXT NOT NULL,
  repository TEXT NOT NULL,
  tag TEXT NOT NULL,
  types INTEGER NOT NULL CHECK (types BETWEEN 1 AND 15),
  digest TEXT NOT NULL,
  confirmed_at INTEGER NOT NULL,
  PRIMARY KEY (registry, repository, tag, types)
) STRICT, WITHOUT ROWID;
)sql";
}

struct DatabaseCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StatementFinalizer {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using DatabasePtr = std::unique_ptr<sqlite3, DatabaseCloser>;
using StatementPtr = std::unique_ptr<sqlite3_stmt, StatementFinalizer>;

[[noreturn]] void fail(const std::string& path, std::string_view what, std::string_view detail) {
  std::string message = "metadata index \"" + path + "\": ";
  message += what;
  message += ": ";
  message += detail;
  throw std::runtime_error(message);
}

[[noreturn]] void fail(sqlite3* db, const std::string& path, std::string_view what) {
  fail(path, what, sqlite3_errmsg(db));
}

// Runs SQL without parameters or results (pragmas, DDL, transaction control).
void exec(sqlite3* db, const std::string& path, const char* sql, std::string_view what) {
  if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK) fail(db, path, what);
}

StatementPtr prepare(sqlite3* db, const std::string& path, std::string_view sql) {
  sqlite3_stmt* raw = nullptr;
  // PERSISTENT: each statement lives as long as the connection and is reused for every call.
  int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
  StatementPtr stmt(raw);
  if (rc != SQLITE_OK) fail(db, path, "cannot prepare \"" + std::string(sql) + "\"");
  return stmt;
}

// One execution of a cached statement. Resetting and clearing the bindings on the way out (also
// when a step throws) leaves the statement ready for the next caller and drops the pointers to
// the caller's strings, which are bound without copying.
class Query {
 public:
  Query(sqlite3* db, const std::string& path, sqlite3_stmt* stmt)
      : db_(db), path_(path), stmt_(stmt) {}
  ~Query() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  Query& bind(int index, const std::string& text) {
    check(sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_STATIC, SQLITE_UTF8));
    return *this;
  }
  Query& bind(int index, std::int64_t value) {
    check(sqlite3_bind_int64(stmt_, index, value));
    return *this;
  }
  Query& bind_size(int index, std::uint64_t size) {
    // The column is a signed 64-bit integer; wrapping would store a negative size.
    if (size > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      fail(path_, "cannot store size", std::to_string(size) + " exceeds 2^63-1");
    }
    return bind(index, static_cast<std::int64_t>(size));
  }

  // True while a row is available; false once the statement is done.
  bool step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail(db_, path_, "cannot run \"" + std::string(sqlite3_sql(stmt_)) + "\"");
  }
  void run() {
    while (step()) {
    }
  }

  std::int64_t integer(int column) const { return sqlite3_column_int64(stmt_, column); }
  // The CHECK constraints keep sizes non-negative.
  std::uint64_t size(int column) const { return static_cast<std::uint64_t>(integer(column)); }
  std::string text(int column) const {
    // Text before bytes: asking for the text may convert the value, which changes its length.
    const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
    auto length = static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column));
    return data == nullptr ? std::string() : std::string(data, length);
  }
  // Valid until the next step.
  std::string_view view(int column) const {
    const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
    auto length = static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column));
    return data == nullptr ? std::string_view() : std::string_view(data, length);
  }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) fail(db_, path_, "cannot bind parameter");
  }

  sqlite3* db_;
  const std::string& path_;
  sqlite3_stmt* stmt_;
};

// Rolls back unless committed, so a throw while creating the schema leaves the file as it was.
class Transaction {
 public:
  Transaction(sqlite3* db, const std::string& path) : db_(db), path_(path) {
    // IMMEDIATE takes the write lock up front: two processes creating the same new file then
    // queue on the busy timeout instead of both reading version 0 and one failing on CREATE.
    exec(db_, path_, "BEGIN IMMEDIATE", "cannot begin transaction");
  }
  ~Transaction() {
    if (!committed_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  void commit() {
    exec(db_, path_, "COMMIT", "cannot commit transaction");
    committed_ = true;
  }

 private:
  sqlite3* db_;
  const std::string& path_;
  bool committed_ = false;
};

std::int64_t schema_version(sqlite3* db, const std::string& path) {
  // The first read of the file: this is where a file that is not a database is detected.
  StatementPtr stmt = prepare(db, path, "PRAGMA user_version");
  Query query(db, path, stmt.get());
  if (!query.step()) fail(path, "cannot read schema version", "no result");
  return query.integer(0);
}

void refuse_newer(const std::string& path, std::int64_t version) {
  if (version > kSchemaVersion) {
    fail(path, "unsupported schema",
         "version " + std::to_string(version) + " was written by a newer pullthrough (this one " +
             "knows up to " + std::to_string(kSchemaVersion) + ")");
  }
}

void configure(sqlite3* db, const std::string& path) {
  if (sqlite3_busy_timeout(db, kBusyTimeoutMs) != SQLITE_OK) {
    fail(db, path, "cannot set busy timeout");
  }
  // Checked before anything writes, so a newer build's file is not even switched to WAL.
  refuse_newer(path, schema_version(db, path));

  StatementPtr stmt = prepare(db, path, "PRAGMA journal_mode = WAL");
  {
    Query query(db, path, stmt.get());
    // The pragma answers with the mode in effect; anything else (a file system without shared
    // memory, say) would silently give up the crash safety this index is here for.
    std::string mode = query.step() ? query.text(0) : std::string();
    if (mode != "wal") fail(path, "cannot switch to the WAL journal", "mode is \"" + mode + "\"");
  }
  // NORMAL in WAL mode syncs at checkpoints only: a power cut may lose the last few updates but
  // never corrupts the file, and the cache can re-learn anything lost from upstream.
  exec(db, path, "PRAGMA synchronous = NORMAL", "cannot set synchronous mode");
  // A checkpoint every 8192 pages (32 MiB of log) instead of SQLite's 1000: a collection that
  // removes 100,000 objects commits about 2,000 transactions, and each checkpoint writes its pages
  // back and syncs the file in the committing thread. Fewer of them write each page once instead
  // of several times: bench-lifecycle's collection took 19 s instead of 23.
  exec(db, path, "PRAGMA wal_autocheckpoint = 8192", "cannot set the checkpoint interval");
  // No table has foreign keys yet; enforcing them from the start keeps later schemas honest.
  exec(db, path, "PRAGMA foreign_keys = ON", "cannot enable foreign keys");
}

void ensure_schema(sqlite3* db, const std::string& path) {
  Transaction transaction(db, path);
  // Read again under the write lock: another process may have created the schema meanwhile.
  std::int64_t version = schema_version(db, path);
  refuse_newer(path, version);
  if (version == 0) {
    exec(db, path, (create_tags_table("tags") + kSchema).c_str(), "cannot create schema");
  }
  if (version == 1) {
    exec(db, path, (create_tags_table("tags_v2") + kMigrateFrom1).c_str(),
         "cannot migrate schema version 1");
  }
  if (version < 3) exec(db, path, kAddAccess, "cannot add the access tables");
  if (version < 4) exec(db, path, kAddLifecycle, "cannot add the lifecycle tables");
  transaction.commit();
}

}  // namespace

// All access to `db` and its statements happens under `mutex`, to `lookup_db` and its statements
// under `lookup_mutex`: the connections are opened with SQLITE_OPEN_NOMUTEX, and sqlite3_errmsg()
// must be read by the thread whose call failed.
struct MetadataIndex::Impl {
  std::string path;
  DatabasePtr db;  // declared before the statements, so it is closed after they are finalized
  // Pulls that store what they fetched wait for it while a collection's idle thread writes.
  core::PriorityInheritanceMutex mutex;

  StatementPtr put_tag;
  StatementPtr list_tags;
  StatementPtr put_manifest;
  StatementPtr put_manifest_known;
  StatementPtr unknown_contents;
  StatementPtr mark_contents_known;
  StatementPtr clear_contents;
  StatementPtr put_content;
  StatementPtr list_contents;
  StatementPtr touch_tag;
  StatementPtr touch_link;
  StatementPtr get_tag_last_used;
  StatementPtr get_link_last_used;
  StatementPtr find_pin;
  StatementPtr put_pin;
  StatementPtr remove_pin;
  StatementPtr list_pins;
  StatementPtr journal_removal;
  StatementPtr forget_manifest;
  StatementPtr forget_links_of;
  StatementPtr forget_tags_of;
  StatementPtr forget_tag;
  StatementPtr forget_link;
  StatementPtr end_removal;
  StatementPtr list_removals;
  StatementPtr holds;
  StatementPtr put_blob;
  StatementPtr touch_blob;
  StatementPtr forget_blob;
  StatementPtr put_link;
  StatementPtr least_recently_used;
  StatementPtr total_blob_bytes;
  StatementPtr total_bytes;
  StatementPtr put_visibility;
  StatementPtr put_base_answer;

  // Point reads, which the network threads make, use a connection of their own under
  // `lookup_mutex`: in WAL mode it reads the last committed state without waiting for a write
  // transaction on `db` (a collection's removals, a batch of recorded uses) to end.
  DatabasePtr lookup_db;  // before its statements, as `db`
  std::mutex lookup_mutex;
  StatementPtr get_tag;
  StatementPtr get_manifest;
  StatementPtr get_blob;
  StatementPtr get_link;
  StatementPtr get_visibility;
  StatementPtr get_base_answer;

  Query query(const StatementPtr& stmt) { return Query(db.get(), path, stmt.get()); }
  Query lookup(const StatementPtr& stmt) { return Query(lookup_db.get(), path, stmt.get()); }
  void write_contents(const std::string& manifest, const std::vector<std::string>& contents) {
    query(clear_contents).bind(1, manifest).run();
    for (const auto& digest : contents) query(put_content).bind(1, manifest).bind(2, digest).run();
  }
};

std::unique_ptr<MetadataIndex> MetadataIndex::open(const std::string& path) {
  // NOMUTEX still needs a library built thread-safe, since other threads use other connections.
  if (sqlite3_threadsafe() == 0) fail(path, "cannot open", "SQLite was built single-threaded");

  auto impl = std::make_unique<Impl>();
  impl->path = path;
  sqlite3* raw = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  impl->db.reset(raw);  // also on failure: SQLite usually allocates a handle to carry the error
  if (rc != SQLITE_OK) {
    fail(path, "cannot open", raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc));
  }
  sqlite3* db = raw;

  configure(db, path);
  ensure_schema(db, path);
  sqlite3* lookup = nullptr;
  rc = sqlite3_open_v2(path.c_str(), &lookup, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
  impl->lookup_db.reset(lookup);
  if (rc != SQLITE_OK) {
    fail(path, "cannot open for lookups",
         lookup != nullptr ? sqlite3_errmsg(lookup) : sqlite3_errstr(rc));
  }
  if (sqlite3_busy_timeout(lookup, kBusyTimeoutMs) != SQLITE_OK) {
    fail(lookup, path, "cannot set busy timeout");
  }

  // A confirmation is made for a client's request: it is a use of the tag too.
  impl->put_tag = prepare(db, path,
                          "INSERT INTO tags (registry, repository, tag, types, digest, "
                          "confirmed_at, last_used) VALUES (?1, ?2, ?3, ?6, ?4, ?5, ?5) "
                          "ON CONFLICT (registry, repository, tag, types) DO UPDATE SET "
                          "digest = excluded.digest, confirmed_at = excluded.confirmed_at, "
                          "last_used = max(last_used, excluded.last_used)");
  impl->get_tag = prepare(lookup, path,
                          "SELECT digest, confirmed_at FROM tags "
                          "WHERE registry = ?1 AND repository = ?2 AND tag = ?3 AND types = ?4");
  impl->list_tags = prepare(db, path,
                            "SELECT DISTINCT tag FROM tags WHERE registry = ?1 AND "
                            "repository = ?2 ORDER BY tag");
  impl->put_manifest = prepare(db, path,
                               "INSERT INTO manifests (digest, media_type, size) "
                               "VALUES (?1, ?2, ?3) "
                               "ON CONFLICT (digest) DO UPDATE SET "
                               "media_type = excluded.media_type, size = excluded.size");
  impl->put_manifest_known = prepare(db, path,
                                     "INSERT INTO manifests (digest, media_type, size, "
                                     "contents_known) VALUES (?1, ?2, ?3, 1) "
                                     "ON CONFLICT (digest) DO UPDATE SET "
                                     "media_type = excluded.media_type, size = excluded.size, "
                                     "contents_known = 1");
  impl->get_manifest =
      prepare(lookup, path, "SELECT media_type, size FROM manifests WHERE digest = ?1");
  impl->unknown_contents = prepare(db, path,
                                   "SELECT digest FROM manifests WHERE contents_known = 0 "
                                   "ORDER BY digest LIMIT ?1");
  impl->mark_contents_known =
      prepare(db, path, "UPDATE manifests SET contents_known = 1 WHERE digest = ?1");
  impl->clear_contents = prepare(db, path, "DELETE FROM contents WHERE manifest = ?1");
  impl->put_content = prepare(db, path,
                              "INSERT INTO contents (manifest, digest) VALUES (?1, ?2) "
                              "ON CONFLICT DO NOTHING");
  impl->list_contents =
      prepare(db, path, "SELECT digest FROM contents WHERE manifest = ?1 ORDER BY digest");
  impl->touch_tag = prepare(db, path,
                            "UPDATE tags SET last_used = ?4 WHERE registry = ?1 AND "
                            "repository = ?2 AND tag = ?3 AND last_used < ?4");
  impl->touch_link = prepare(db, path,
                             "UPDATE links SET last_used = ?4 WHERE registry = ?1 AND "
                             "repository = ?2 AND digest = ?3 AND last_used < ?4");
  impl->get_tag_last_used = prepare(db, path,
                                    "SELECT max(last_used) FROM tags WHERE registry = ?1 AND "
                                    "repository = ?2 AND tag = ?3 HAVING count(*) > 0");
  impl->get_link_last_used = prepare(db, path,
                                     "SELECT last_used FROM links WHERE registry = ?1 AND "
                                     "repository = ?2 AND digest = ?3");
  impl->find_pin = prepare(db, path, "SELECT 1 FROM pins WHERE pattern = ?1");
  impl->put_pin = prepare(db, path,
                          "INSERT INTO pins (pattern, created_at, expires_at, source) "
                          "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (pattern) DO UPDATE SET "
                          "created_at = excluded.created_at, expires_at = excluded.expires_at, "
                          "source = excluded.source");
  impl->remove_pin = prepare(db, path, "DELETE FROM pins WHERE pattern = ?1");
  impl->list_pins = prepare(db, path,
                            "SELECT pattern, created_at, expires_at, source FROM pins "
                            "ORDER BY pattern");
  impl->journal_removal = prepare(db, path,
                                  "INSERT INTO removals (digest, queued_at) VALUES (?1, ?2) "
                                  "ON CONFLICT (digest) DO UPDATE SET queued_at = "
                                  "excluded.queued_at");
  impl->forget_manifest = prepare(db, path, "DELETE FROM manifests WHERE digest = ?1");
  impl->forget_links_of = prepare(db, path, "DELETE FROM links WHERE digest = ?1");
  impl->forget_tags_of = prepare(db, path, "DELETE FROM tags WHERE digest = ?1");
  impl->forget_tag = prepare(db, path,
                             "DELETE FROM tags WHERE registry = ?1 AND repository = ?2 AND "
                             "tag = ?3");
  impl->forget_link = prepare(db, path,
                              "DELETE FROM links WHERE registry = ?1 AND repository = ?2 AND "
                              "digest = ?3");
  impl->end_removal = prepare(db, path, "DELETE FROM removals WHERE digest = ?1");
  impl->list_removals = prepare(db, path, "SELECT digest FROM removals ORDER BY digest");
  impl->holds = prepare(db, path,
                        "SELECT 1 FROM blobs WHERE digest = ?1 UNION ALL "
                        "SELECT 1 FROM manifests WHERE digest = ?1 LIMIT 1");
  impl->put_blob = prepare(db, path,
                           "INSERT INTO blobs (digest, size, stored_at, last_access) "
                           "VALUES (?1, ?2, ?3, ?3) "
                           "ON CONFLICT (digest) DO UPDATE SET size = excluded.size, "
                           "last_access = max(last_access, excluded.last_access)");
  impl->get_blob =
      prepare(lookup, path, "SELECT size, stored_at, last_access FROM blobs WHERE digest = ?1");
  impl->touch_blob = prepare(db, path,
                             "UPDATE blobs SET last_access = ?2 "
                             "WHERE digest = ?1 AND last_access < ?2");
  impl->forget_blob = prepare(db, path, "DELETE FROM blobs WHERE digest = ?1");
  impl->put_link = prepare(db, path,
                           "INSERT INTO links (registry, repository, digest, last_used) "
                           "VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO UPDATE SET "
                           "last_used = max(last_used, excluded.last_used)");
  impl->get_link = prepare(lookup, path,
                           "SELECT 1 FROM links "
                           "WHERE registry = ?1 AND repository = ?2 AND digest = ?3");
  impl->least_recently_used = prepare(db, path,
                                      "SELECT digest, size, stored_at, last_access FROM blobs "
                                      "ORDER BY last_access, digest LIMIT ?1");
  // SUM() over integers reports an overflow as an error instead of wrapping.
  impl->total_blob_bytes = prepare(db, path, "SELECT coalesce(sum(size), 0) FROM blobs");
  impl->total_bytes = prepare(db, path,
                              "SELECT (SELECT coalesce(sum(size), 0) FROM blobs) + "
                              "(SELECT coalesce(sum(size), 0) FROM manifests WHERE digest NOT IN "
                              "(SELECT digest FROM blobs))");
  impl->put_visibility = prepare(db, path,
                                 "INSERT INTO repositories (registry, repository, public, "
                                 "checked_at) VALUES (?1, ?2, ?3, ?4) "
                                 "ON CONFLICT (registry, repository) DO UPDATE SET "
                                 "public = excluded.public, checked_at = excluded.checked_at");
  impl->get_visibility = prepare(lookup, path,
                                 "SELECT public, checked_at FROM repositories "
                                 "WHERE registry = ?1 AND repository = ?2");
  impl->put_base_answer = prepare(db, path,
                                  "INSERT INTO base_answers (registry, status, challenges, "
                                  "seen_at) VALUES (?1, ?2, ?3, ?4) "
                                  "ON CONFLICT (registry) DO UPDATE SET status = excluded.status, "
                                  "challenges = excluded.challenges, seen_at = excluded.seen_at");
  impl->get_base_answer = prepare(lookup, path,
                                  "SELECT status, challenges, seen_at FROM base_answers "
                                  "WHERE registry = ?1");

  return std::unique_ptr<MetadataIndex>(new MetadataIndex(std::move(impl)));
}

MetadataIndex::MetadataIndex(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

MetadataIndex::~MetadataIndex() = default;

void MetadataIndex::put_tag(const std::string& registry, const std::string& repository,
                            const std::string& tag, const std::string& digest,
                            UnixSeconds confirmed_at, ManifestTypeSet types) {
  if (types == 0 || types > kAllManifestTypes) {
    fail(impl_->path, "cannot record tag " + tag, "invalid manifest type set");
  }
  std::lock_guard lock(impl_->mutex);
  impl_->query(impl_->put_tag)
      .bind(1, registry)
      .bind(2, repository)
      .bind(3, tag)
      .bind(4, digest)
      .bind(5, confirmed_at)
      .bind(6, static_cast<std::int64_t>(types))
      .run();
}

std::optional<TagRecord> MetadataIndex::tag(const std::string& registry,
                                            const std::string& repository, const std::string& tag,
                                            ManifestTypeSet types) const {
  std::lock_guard lock(impl_->lookup_mutex);
  Query query = impl_->lookup(impl_->get_tag);
  query.bind(1, registry)
      .bind(2, repository)
      .bind(3, tag)
      .bind(4, static_cast<std::int64_t>(types));
  if (!query.step()) return std::nullopt;
  return TagRecord{query.text(0), query.integer(1)};
}

std::vector<std::string> MetadataIndex::tags(const std::string& registry,
                                             const std::string& repository) const {
  std::lock_guard lock(impl_->mutex);
  Query query = impl_->query(impl_->list_tags);
  query.bind(1, registry).bind(2, repository);
  std::vector<std::string> result;
  while (query.step()) result.push_back(query.text(0));
  return result;
}

void MetadataIndex::put_manifest(const std::string& digest, const std::string& media_type,
                                 std::uint64_t size) {
  std::lock_guard lock(impl_->mutex);
  impl_->query(impl_->put_manifest).bind(1, digest).bind(2, media_type).bind_size(3, size).run();
}

void MetadataIndex::put_manifest(const std::string& digest, const std::string& media_type,
                                 std::uint64_t size, const std::vector<std::string>& contents) {
  std::lock_guard lock(impl_->mutex);
  Transaction transaction(impl_->db.get(), impl_->path);
  impl_->query(impl_->put_manifest_known)
      .bind(1, digest)
      .bind(2, media_type)
      .bind_size(3, size)
      .run();
  impl_->write_contents(digest, contents);
  transaction.commit();
}

std::vector<std::string> MetadataIndex::manifests_without_contents(std::size_t limit) const {
  auto bounded = static_cast<std::int64_t>(
      std::min<std::uint64_t>(limit, std::numeric_limits<std::int64_t>::max()));
  std::lock_guard lock(impl_->mutex);
  Query query = impl_->query(impl_->unknown_contents);
  query.bind(1, bounded);
  std::vector<std::string> result;
  while (query.step()) result.push_back(query.text(0));
  return result;
}

void MetadataIndex::set_contents(const std::string& manifest,
                                 const std::vector<std::string>& contents) {
  std::lock_guard lock(impl_->mutex);
  Transaction transaction(impl_->db.get(), impl_->path);
  impl_->query(impl_->mark_contents_known).bind(1, manifest).run();
  if (sqlite3_changes(impl_->db.get()) == 0) return;  // not held: rolled back, nothing written
  impl_->write_contents(manifest, contents);
  transaction.commit();
}

std::vector<std::string> MetadataIndex::contents(const std::string& manifest) const {
  std::lock_guard lock(impl_->mutex);
  Query query = impl_->query(impl_->list_contents);
  query.bind(1, manifest);
  std::vector<std::string> result;
  while (query.step()) result.push_back(query.text(0));
  return result;
}

std::optional<ManifestRecord> MetadataIndex::manifest(const std::string& digest) const {
  std::lock_guard lock(impl_->lookup_mutex);
  Query query = impl_->lookup(impl_->get_manifest);
  query.bind(1, digest);
  if (!query.step()) return std::nullopt;
  return ManifestRecord{query.text(0), query.size(1)};
}

void MetadataIndex::put_blob(const std::string& digest, std::uint64_t size, UnixSeconds stored_at) {
  std::lock_guard lock(impl_->mutex);
  impl_->query(impl_->put_blob).bind(1, digest).bind_size(2, size).bind(3, stored_at).run();
}

std::optional<BlobRecord> MetadataIndex::blob(const std::string& digest) const {
  std::lock_guard lock(impl_->lookup_mutex);
  Query query = impl_->lookup(impl_->get_blob);
  query.bind(1, digest);
  if (!query.step()) return std::nullopt;
  return BlobRecord{query.size(0), query.integer(1), query.integer(2)};
}

void MetadataIndex::touch_blob(const std::string& digest, UnixSeconds when) {
  std::lock_guard lock(impl_->mutex);
  impl_->query(impl_->touch_blob).bind(1, digest).bind(2, when).run();
}

void MetadataIndex::touch_blobs(const std::vector<std::pair<std::string, UnixSeconds>>& accesses) {
  std::lock_guard lock(impl_->mutex);
  Transaction transaction(impl_->db.get(), impl_->path);
  for (const auto& [digest, when] : accesses) {
    impl_->query(impl_->touch_blob).bind(1, digest).bind(2, when).run();
  }
  transaction.commit();
}

void MetadataIndex::record_uses(const std::vector<ContentUse>& uses) {
  std::lock_guard lock(impl_->mutex);
  Transaction transaction(impl_->db.get(), impl_->path);
  for (const auto& use : uses) {
    switch (use.kind) {
      case ContentUse::Kind::blob:
        impl_->query(impl_->touch_blob).bind(1, use.name).bind(2, use.when).run();
        break;
      case ContentUse::Kind::tag:
        impl_->query(impl_->touch_tag)
            .bind(1, use.registry)
            .bind(2, use.repository)
            .bind(3, use.name)
            .bind(4, use.when)
            .run();
        break;
      case ContentUse::Kind::manifest:
        impl_->query(impl_->touch_link)
            .bind(1, use.registry)
            .bind(2, use.repository)
            .bind(3, use.name)
            .bind(4, use.when)
            .run();
        break;
    }
  }
  transaction.commit();
}

std::optional<UnixSeconds> MetadataIndex::tag_last_used(const std::string& registry,
                                                        const std::string& repository,
                                                        const std::string& tag) const {
  std::lock_guard lock(impl_->mutex);
  Query query = impl_->query(impl_->get_tag_last_used);
  query.bind(1, registry).bind(2, repository).bind(3, tag);
  if (!query.step()) return std::nullopt;
  return query.integer(0);
}

std::optional<UnixSeconds> MetadataIndex::link_last_used(const std::string& registry,
                                                         const std::string& repository,
                                                         const std::string& digest) const {
  std::lock_guard lock(impl_->mutex);
  Query query = impl_->query(impl_->get_link_last_used);
  query.bind(1, registry).bind(2, repository).bind(3, digest);
  if (!query.step()) return std::nullopt;
  return query.integer(0);
}

bool MetadataIndex::put_pin(const PinRecord& record) {
  std::lock_guard lock(impl_->mutex);
  Transaction transaction(impl_->db.get(), impl_->path);
  bool existed = false;
  {
    Query query = impl_->query(impl_->find_pin);
    query.bind(1, record.pattern);
    existed = query.step();
  }
  impl_->query(impl_->put_pin)
      .bind(1, record.pattern)
      .bind(2, record.created_at)
      .bind(3, record.expires_at)
      .bind(4, record.source)
      .run();
  transaction.commit();
  return !existed;
}

bool MetadataIndex::remove_pin(const std::string& pattern) {
  std::lock_guard lock(impl_->mutex);
  impl_->query(impl_->remove_pin).bind(1, pattern).run();
  return sqlite3_changes(impl_->db.get()) > 0;
}

namespace {
PinRecord pin_of(const Query& query) {
  return PinRecord{query.text(0), query.integer(1), query.integer(2), query.text(3)};
}
}  // namespace

std::vector<PinRecord> MetadataIndex::pins() const {
  std::lock_guard lock(impl_->mutex);
  Query query = impl_->query(impl_->list_pins);
  std::vector<PinRecord> result;
  while (query.step()) result.push_back(pin_of(query));
  return result;
}

void MetadataIndex::begin_removal(const RemovalBatch& batch, UnixSeconds now) {
  std::lock_guard lock(impl_->mutex);
  Transaction transaction(impl_->db.get(), impl_->path);
  for (const auto& digest : batch.objects) {
    impl_->query(impl_->journal_removal).bind(1, digest).bind(2, now).run();
    impl_->query(impl_->forget_blob).bind(1, digest).run();
    impl_->query(impl_->forget_manifest).bind(1, digest).run();
    impl_->query(impl_->clear_contents).bind(1, digest).run();
    impl_->query(impl_->forget_links_of).bind(1, digest).run();
    impl_->query(impl_->forget_tags_of).bind(1, digest).run();
  }
  for (const auto& tag : batch.tags) {
    impl_->query(impl_->forget_tag)
        .bind(1, tag.registry)
        .bind(2, tag.repository)
        .bind(3, tag.tag)
        .run();
  }
  for (const auto& link : batch.links) {
    impl_->query(impl_->forget_link)
        .bind(1, link.registry)
        .bind(2, link.repository)
        .bind(3, link.digest)
        .run();
  }
  transaction.commit();
}

void MetadataIndex::end_removal(const std::vector<std::string>& objects) {
  std::lock_guard lock(impl_->mutex);
  Transaction transaction(impl_->db.get(), impl_->path);
  for (const auto& digest : objects) impl_->query(impl_->end_removal).bind(1, digest).run();
  transaction.commit();
}

std::vector<std::string> MetadataIndex::pending_removals() const {
  std::lock_guard lock(impl_->mutex);
  Query query = impl_->query(impl_->list_removals);
  std::vector<std::string> result;
  while (query.step()) result.push_back(query.text(0));
  return result;
}

bool MetadataIndex::holds(const std::string& digest) const {
  std::lock_guard lock(impl_->mutex);
  Query query = impl_->query(impl_->holds);
  query.bind(1, digest);
  return query.step();
}

void MetadataIndex::forget_blob(const std::string& digest) {
  std::lock_guard lock(impl_->mutex);
  impl_->query(impl_->forget_blob).bind(1, digest).run();
}

void MetadataIndex::link(const std::string& registry, const std::string& repository,
                         const std::string& digest, UnixSeconds when) {
  std::lock_guard lock(impl_->mutex);
  impl_->query(impl_->put_link)
      .bind(1, registry)
      .bind(2, repository)
      .bind(3, digest)
      .bind(4, when)
      .run();
}

bool MetadataIndex::linked(const std::string& registry, const std::string& repository,
                           const std::string& digest) const {
  std::lock_guard lock(impl_->lookup_mutex);
  Query query = impl_->lookup(impl_->get_link);
  query.bind(1, registry).bind(2, repository).bind(3, digest);
  return query.step();
}

std::vector<std::pair<std::string, BlobRecord>> MetadataIndex::least_recently_used(
    std::size_t limit) const {
  // SQLite's LIMIT is signed; anything beyond 2^63-1 means "all" anyway.
  auto bounded = static_cast<std::int64_t>(
      std::min<std::uint64_t>(limit, std::numeric_limits<std::int64_t>::max()));
  std::lock_guard lock(impl_->mutex);
  Query query = impl_->query(impl_->least_recently_used);
  query.bind(1, bounded);
  std::vector<std::pair<std::string, BlobRecord>> result;
  while (query.step()) {
    result.emplace_back(query.text(0),
                        BlobRecord{query.size(1), query.integer(2), query.integer(3)});
  }
  return result;
}

std::uint64_t MetadataIndex::total_blob_bytes() const {
  std::lock_guard lock(impl_->mutex);
  Query query = impl_->query(impl_->total_blob_bytes);
  if (!query.step()) return 0;
  return query.size(0);
}

std::uint64_t MetadataIndex::total_bytes() const {
  std::lock_guard lock(impl_->mutex);
  Query query = impl_->query(impl_->total_bytes);
  if (!query.step()) return 0;
  return query.size(0);
}

void MetadataIndex::put_visibility(const std::string& registry, const std::string& repository,
                                   bool is_public, UnixSeconds checked_at) {
  std::lock_guard lock(impl_->mutex);
  impl_->query(impl_->put_visibility)
      .bind(1, registry)
      .bind(2, repository)
      .bind(3, std::int64_t{is_public ? 1 : 0})
      .bind(4, checked_at)
      .run();
}

std::optional<VisibilityRecord> MetadataIndex::visibility(const std::string& registry,
                                                          const std::string& repository) const {
  std::lock_guard lock(impl_->lookup_mutex);
  Query query = impl_->lookup(impl_->get_visibility);
  query.bind(1, registry).bind(2, repository);
  if (!query.step()) return std::nullopt;
  return VisibilityRecord{query.integer(0) != 0, query.integer(1)};
}

void MetadataIndex::put_base_answer(const std::string& registry, const BaseAnswerRecord& answer) {
  std::string challenges;
  for (const auto& value : answer.challenges) {
    // A field value holds no line break (Beast refuses one), so lines separate them.
    if (value.find('\n') != std::string::npos) {
      fail(impl_->path, "cannot record the base answer of " + registry, "line break in a value");
    }
    if (!challenges.empty()) challenges += '\n';
    challenges += value;
  }
  std::lock_guard lock(impl_->mutex);
  impl_->query(impl_->put_base_answer)
      .bind(1, registry)
      .bind(2, static_cast<std::int64_t>(answer.status))
      .bind(3, challenges)
      .bind(4, answer.seen_at)
      .run();
}

std::optional<BaseAnswerRecord> MetadataIndex::base_answer(const std::string& registry) const {
  std::lock_guard lock(impl_->lookup_mutex);
  Query query = impl_->lookup(impl_->get_base_answer);
  query.bind(1, registry);
  if (!query.step()) return std::nullopt;
  BaseAnswerRecord answer;
  answer.status = static_cast<unsigned>(query.integer(0));
  std::string joined = query.text(1);
  std::size_t at = 0;
  while (at < joined.size()) {
    auto end = joined.find('\n', at);
    if (end == std::string::npos) end = joined.size();
    answer.challenges.push_back(joined.substr(at, end - at));
    at = end + 1;
  }
  answer.seen_at = query.integer(2);
  return answer;
}

// A connection of its own, read-only, inside one read transaction from the first scan to the end:
// in WAL mode that is a snapshot, and the proxy's connection keeps writing meanwhile.
struct MetadataSnapshot::Impl {
  std::string path;
  DatabasePtr db;

  ~Impl() {
    if (db) sqlite3_exec(db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
  }

  template <typename Row>
  void scan(const char* sql, const Row& row) const {
    StatementPtr stmt = prepare(db.get(), path, sql);
    Query query(db.get(), path, stmt.get());
    while (query.step()) row(query);
  }
};

std::unique_ptr<MetadataSnapshot> MetadataIndex::snapshot() const {
  auto impl = std::make_unique<MetadataSnapshot::Impl>();
  impl->path = impl_->path;
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(impl->path.c_str(), &raw, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  impl->db.reset(raw);
  if (rc != SQLITE_OK) {
    fail(impl->path, "cannot open a snapshot",
         raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc));
  }
  if (sqlite3_busy_timeout(raw, kBusyTimeoutMs) != SQLITE_OK) {
    fail(raw, impl->path, "cannot set busy timeout");
  }
  exec(raw, impl->path, "BEGIN", "cannot begin the snapshot");
  // The snapshot starts at the first read; reading here fixes it before anything is scanned.
  refuse_newer(impl->path, schema_version(raw, impl->path));
  return std::unique_ptr<MetadataSnapshot>(new MetadataSnapshot(std::move(impl)));
}

MetadataSnapshot::MetadataSnapshot(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

MetadataSnapshot::~MetadataSnapshot() = default;

void MetadataSnapshot::manifests(
    const std::function<void(std::string_view, std::uint64_t, bool)>& row) const {
  impl_->scan("SELECT digest, size, contents_known FROM manifests ORDER BY digest",
              [&](const Query& q) { row(q.view(0), q.size(1), q.integer(2) != 0); });
}

void MetadataSnapshot::blobs(
    const std::function<void(std::string_view, const BlobRecord&)>& row) const {
  impl_->scan("SELECT digest, size, stored_at, last_access FROM blobs ORDER BY digest",
              [&](const Query& q) {
                row(q.view(0), BlobRecord{q.size(1), q.integer(2), q.integer(3)});
              });
}

void MetadataSnapshot::contents(
    const std::function<void(std::string_view, std::string_view)>& row) const {
  impl_->scan("SELECT manifest, digest FROM contents ORDER BY manifest, digest",
              [&](const Query& q) { row(q.view(0), q.view(1)); });
}

void MetadataSnapshot::tags(
    const std::function<void(std::string_view, std::string_view, std::string_view, std::string_view,
                             UnixSeconds)>& row) const {
  impl_->scan(
      "SELECT registry, repository, tag, digest, last_used FROM tags "
      "ORDER BY registry, repository, tag, types",
      [&](const Query& q) { row(q.view(0), q.view(1), q.view(2), q.view(3), q.integer(4)); });
}

void MetadataSnapshot::links(const std::function<void(std::string_view, std::string_view,
                                                      std::string_view, UnixSeconds)>& row) const {
  impl_->scan(
      "SELECT registry, repository, digest, last_used FROM links "
      "ORDER BY registry, repository, digest",
      [&](const Query& q) { row(q.view(0), q.view(1), q.view(2), q.integer(3)); });
}

MetadataSnapshot::Counts MetadataSnapshot::counts() const {
  Counts counts;
  impl_->scan(
      "SELECT (SELECT count(*) FROM manifests), (SELECT count(*) FROM blobs), "
      "(SELECT count(*) FROM contents), (SELECT count(*) FROM links)",
      [&](const Query& q) {
        counts = Counts{q.size(0), q.size(1), q.size(2), q.size(3)};
      });
  return counts;
}

std::vector<PinRecord> MetadataSnapshot::pins() const {
  std::vector<PinRecord> result;
  impl_->scan("SELECT pattern, created_at, expires_at, source FROM pins ORDER BY pattern",
              [&](const Query& q) { result.push_back(pin_of(q)); });
  return result;
}

}  // namespace pullthrough::proxy
