#include "proxy/metadata_index.hpp"

#include <algorithm>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string_view>

#include <sqlite3.h>

namespace pullthrough::proxy {
namespace {

// PRAGMA user_version of the schema below. A later version adds a migration step in
// ensure_schema() and refuses nothing older; a database from a newer build is refused because
// this code cannot know which of its invariants the newer schema relies on.
constexpr std::int64_t kSchemaVersion = 3;

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
  transaction.commit();
}

}  // namespace

// All access to `db` and the statements happens under `mutex`: the connection is opened with
// SQLITE_OPEN_NOMUTEX, and sqlite3_errmsg() must be read by the thread whose call failed.
struct MetadataIndex::Impl {
  std::string path;
  DatabasePtr db;  // declared before the statements, so it is closed after they are finalized
  std::mutex mutex;

  StatementPtr put_tag;
  StatementPtr get_tag;
  StatementPtr list_tags;
  StatementPtr put_manifest;
  StatementPtr get_manifest;
  StatementPtr put_blob;
  StatementPtr get_blob;
  StatementPtr touch_blob;
  StatementPtr forget_blob;
  StatementPtr put_link;
  StatementPtr get_link;
  StatementPtr least_recently_used;
  StatementPtr total_blob_bytes;
  StatementPtr put_visibility;
  StatementPtr get_visibility;
  StatementPtr put_base_answer;
  StatementPtr get_base_answer;

  Query query(const StatementPtr& stmt) { return Query(db.get(), path, stmt.get()); }
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

  impl->put_tag = prepare(db, path,
                          "INSERT INTO tags (registry, repository, tag, types, digest, "
                          "confirmed_at) VALUES (?1, ?2, ?3, ?6, ?4, ?5) "
                          "ON CONFLICT (registry, repository, tag, types) DO UPDATE SET "
                          "digest = excluded.digest, confirmed_at = excluded.confirmed_at");
  impl->get_tag = prepare(db, path,
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
  impl->get_manifest =
      prepare(db, path, "SELECT media_type, size FROM manifests WHERE digest = ?1");
  impl->put_blob = prepare(db, path,
                           "INSERT INTO blobs (digest, size, stored_at, last_access) "
                           "VALUES (?1, ?2, ?3, ?3) "
                           "ON CONFLICT (digest) DO UPDATE SET size = excluded.size, "
                           "last_access = max(last_access, excluded.last_access)");
  impl->get_blob =
      prepare(db, path, "SELECT size, stored_at, last_access FROM blobs WHERE digest = ?1");
  impl->touch_blob = prepare(db, path,
                             "UPDATE blobs SET last_access = ?2 "
                             "WHERE digest = ?1 AND last_access < ?2");
  impl->forget_blob = prepare(db, path, "DELETE FROM blobs WHERE digest = ?1");
  impl->put_link = prepare(db, path,
                           "INSERT INTO links (registry, repository, digest) VALUES (?1, ?2, ?3) "
                           "ON CONFLICT DO NOTHING");
  impl->get_link = prepare(db, path,
                           "SELECT 1 FROM links "
                           "WHERE registry = ?1 AND repository = ?2 AND digest = ?3");
  impl->least_recently_used = prepare(db, path,
                                      "SELECT digest, size, stored_at, last_access FROM blobs "
                                      "ORDER BY last_access, digest LIMIT ?1");
  // SUM() over integers reports an overflow as an error instead of wrapping.
  impl->total_blob_bytes = prepare(db, path, "SELECT coalesce(sum(size), 0) FROM blobs");
  impl->put_visibility = prepare(db, path,
                                 "INSERT INTO repositories (registry, repository, public, "
                                 "checked_at) VALUES (?1, ?2, ?3, ?4) "
                                 "ON CONFLICT (registry, repository) DO UPDATE SET "
                                 "public = excluded.public, checked_at = excluded.checked_at");
  impl->get_visibility = prepare(db, path,
                                 "SELECT public, checked_at FROM repositories "
                                 "WHERE registry = ?1 AND repository = ?2");
  impl->put_base_answer = prepare(db, path,
                                  "INSERT INTO base_answers (registry, status, challenges, "
                                  "seen_at) VALUES (?1, ?2, ?3, ?4) "
                                  "ON CONFLICT (registry) DO UPDATE SET status = excluded.status, "
                                  "challenges = excluded.challenges, seen_at = excluded.seen_at");
  impl->get_base_answer = prepare(db, path,
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
  std::lock_guard lock(impl_->mutex);
  Query query = impl_->query(impl_->get_tag);
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

std::optional<ManifestRecord> MetadataIndex::manifest(const std::string& digest) const {
  std::lock_guard lock(impl_->mutex);
  Query query = impl_->query(impl_->get_manifest);
  query.bind(1, digest);
  if (!query.step()) return std::nullopt;
  return ManifestRecord{query.text(0), query.size(1)};
}

void MetadataIndex::put_blob(const std::string& digest, std::uint64_t size, UnixSeconds stored_at) {
  std::lock_guard lock(impl_->mutex);
  impl_->query(impl_->put_blob).bind(1, digest).bind_size(2, size).bind(3, stored_at).run();
}

std::optional<BlobRecord> MetadataIndex::blob(const std::string& digest) const {
  std::lock_guard lock(impl_->mutex);
  Query query = impl_->query(impl_->get_blob);
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

void MetadataIndex::forget_blob(const std::string& digest) {
  std::lock_guard lock(impl_->mutex);
  impl_->query(impl_->forget_blob).bind(1, digest).run();
}

void MetadataIndex::link(const std::string& registry, const std::string& repository,
                         const std::string& digest) {
  std::lock_guard lock(impl_->mutex);
  impl_->query(impl_->put_link).bind(1, registry).bind(2, repository).bind(3, digest).run();
}

bool MetadataIndex::linked(const std::string& registry, const std::string& repository,
                           const std::string& digest) const {
  std::lock_guard lock(impl_->mutex);
  Query query = impl_->query(impl_->get_link);
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
  std::lock_guard lock(impl_->mutex);
  Query query = impl_->query(impl_->get_visibility);
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
  std::lock_guard lock(impl_->mutex);
  Query query = impl_->query(impl_->get_base_answer);
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

}  // namespace pullthrough::proxy
