// Runs mongo-java-server (H2 backend) as localdev's mongo flavor "mongo-java-server", adding what it
// lacks for a shared cluster: authentication and per-database authorisation.
//
// mongo-java-server has no users at all: every client can read and write every database. This
// launcher wraps its backend's command handler (MongoBackend.handleCommand/handleMessage are the one
// path every OP_MSG and legacy $cmd query takes) and, per connection:
//   - answers `hello` (not implemented upstream; drivers with a server API need it) and
//     `saslSupportedMechs`, and runs SCRAM-SHA-256 and SCRAM-SHA-1 conversations itself
//     (saslStart/saslContinue, and speculative authentication inside the handshake, as drivers do);
//   - refuses every other command before authentication (code 13, as MongoDB does);
//   - lets a user run commands only against its own database: another database, the cluster-wide
//     admin commands and other users' cursors are refused (code 13); listDatabases shows only its own;
//   - refuses multi-document transactions up front (code 20, as a standalone MongoDB does): upstream
//     would ignore startTransaction and apply the writes at once, so an abort would not undo them;
//   - corrects or refuses what upstream answers wrongly without an error (found by our conformance
//     suite, tests/test_mongo_conformance.py): an insert's count when some documents failed, and
//     $project of a dotted path (wrong through arrays), and change streams (update events carry a
//     delta of $set/$unset as fullDocument, no updateDescription, nothing for $inc), both refused;
//   - drops a database's storage by its exact name: upstream's dropDatabase also removes the data of
//     every database whose name starts with it (dropping ns_pr_1 emptied ns_pr_10..ns_pr_19);
//   - copies a database at the storage level for localdev's snapshots (localdevCopyDatabase {from, to}
//     on admin, root only): its MVStore maps under the new name, in one commit, under both databases'
//     write locks (every command holds its database's read lock), ~50x faster than a copy through a driver;
//   - compares unique indexes' keys without serializing the searched key at every step (IndexKeys);
//   - announces sessions (upstream ignores lsid, which is right for one node without transactions);
//   - keeps the oplog off unless --oplog true: only change streams read it, they are refused, and it
//     made 50 000 inserts ~10x slower.
// Users are made by localdev's root user with createUser/updateUser/dropUser/dropAllUsersFromDatabase,
// each with readWrite on one database; only their SCRAM keys are kept (a users file, replaced
// atomically), never a password. The root user's password comes from the environment.
// A user made with customData.maxConnections = N may hold N authenticated connections at once; one more
// fails its authentication with "too many connections for user" (the namespace's connection budget).
//
// Usage: java -cp <jars> MongoJavaServer --host H --port P --data FILE --users FILE
//        (LOCALDEV_MONGO_ROOT_USER, LOCALDEV_MONGO_ROOT_PASSWORD in the environment)
// Exit codes: 0 after a clean stop (SIGTERM), 2 on bad arguments, 3 if the port could not be bound.

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.time.Clock;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.Lock;
import java.util.concurrent.locks.ReentrantReadWriteLock;

import javax.crypto.Mac;
import javax.crypto.SecretKeyFactory;
import javax.crypto.spec.PBEKeySpec;
import javax.crypto.spec.SecretKeySpec;

import org.h2.mvstore.DataUtils;
import org.h2.mvstore.MVMap;
import org.h2.mvstore.MVStore;

import de.bwaldvogel.mongo.MongoBackend;
import de.bwaldvogel.mongo.MongoDatabase;
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.CursorRegistry;
import de.bwaldvogel.mongo.backend.QueryResult;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.backend.h2.H2Database;
import de.bwaldvogel.mongo.bson.BinData;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.exception.MongoServerError;
import de.bwaldvogel.mongo.oplog.Oplog;
import de.bwaldvogel.mongo.wire.message.MongoMessage;
import de.bwaldvogel.mongo.wire.message.MongoQuery;
import io.netty.channel.Channel;

public final class MongoJavaServer {

    // Drivers of the last years refuse the wire version upstream reports (8): say 5.0's (13), whose
    // commands (OP_MSG, find/getMore, aggregate cursors) are what upstream implements.
    static final MongoVersion VERSION = new MongoVersion() {
        @Override public List<Integer> getVersionArray() { return List.of(5, 0, 0); }
        @Override public int getWireVersion() { return 13; }
    };

    /** A PKCS#8 private key in PEM (what localdev's CA writes: EC P-256). */
    static java.security.PrivateKey readKey(Path path) throws Exception {
        String pem = Files.readString(path);
        String body = pem.replaceAll("-----[A-Z ]+-----", "").replaceAll("\\s", "");
        byte[] der = java.util.Base64.getDecoder().decode(body);
        java.security.spec.PKCS8EncodedKeySpec spec = new java.security.spec.PKCS8EncodedKeySpec(der);
        String algorithm = pem.contains("BEGIN RSA") ? "RSA" : "EC";
        try {
            return java.security.KeyFactory.getInstance(algorithm).generatePrivate(spec);
        } catch (java.security.spec.InvalidKeySpecException e) {
            return java.security.KeyFactory.getInstance("RSA").generatePrivate(spec);
        }
    }

    static java.security.cert.X509Certificate readCert(Path path) throws Exception {
        try (java.io.InputStream in = Files.newInputStream(path)) {
            return (java.security.cert.X509Certificate)
                    java.security.cert.CertificateFactory.getInstance("X.509").generateCertificate(in);
        }
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> opts = new HashMap<>();
        for (int i = 0; i + 1 < args.length; i += 2) {
            if (!args[i].startsWith("--")) {
                usage("unexpected argument " + args[i]);
            }
            opts.put(args[i].substring(2), args[i + 1]);
        }
        if (args.length % 2 != 0) {
            usage("an option without a value: " + args[args.length - 1]);
        }
        for (String key : List.of("host", "port", "data", "users")) {
            if (!opts.containsKey(key)) {
                usage("--" + key + " is required");
            }
        }
        String rootUser = System.getenv().getOrDefault("LOCALDEV_MONGO_ROOT_USER", "localdev");
        String rootPassword = System.getenv("LOCALDEV_MONGO_ROOT_PASSWORD");
        if (rootPassword == null || rootPassword.isEmpty()) {
            usage("LOCALDEV_MONGO_ROOT_PASSWORD is not set");
        }
        int cacheMb = Integer.parseInt(opts.getOrDefault("cache-mb", "16"));

        MVStore store = new MVStore.Builder().fileName(opts.get("data")).cacheSize(cacheMb).open();
        ExactDropH2Backend h2 = new ExactDropH2Backend(store, Clock.systemUTC());
        h2.version(VERSION);
        Users users = new Users(Paths.get(opts.get("users")), rootUser, rootPassword);
        AuthBackend backend = new AuthBackend(h2, users);
        MongoServer server = new MongoServer(backend);
        if (Boolean.parseBoolean(opts.getOrDefault("oplog", "false"))) {
            // Only change streams read it, and they are refused below; it doubles every write's work.
            server.enableOplog();
        }
        if (opts.containsKey("tls-cert") != opts.containsKey("tls-key")) {
            usage("--tls-cert and --tls-key go together");
        }
        if (opts.containsKey("tls-cert")) {
            // Every connection then speaks TLS with the cluster's certificate (localdev's own too).
            server.enableSsl(readKey(Paths.get(opts.get("tls-key"))), null, readCert(Paths.get(opts.get("tls-cert"))));
        }
        try {
            server.bind(opts.get("host"), Integer.parseInt(opts.get("port")));
        } catch (RuntimeException e) {
            System.err.println("localdev: mongo-java-server could not listen on " + opts.get("host") + ":"
                    + opts.get("port") + ": " + e.getMessage());
            store.close();
            System.exit(3);
        }
        System.err.println("localdev: mongo-java-server listening on " + opts.get("host") + ":" + opts.get("port"));
        Object done = new Object();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.shutdownNow();  // closes the backend, which commits and closes the H2 store
            synchronized (done) {
                done.notifyAll();
            }
        }, "localdev-stop"));
        synchronized (done) {
            done.wait();
        }
    }

    // Upstream's H2Database.drop, after dropping each collection, removes every map whose name starts
    // with "databases." + name or "meta." + name, without the dot that ends a database's name: dropping
    // ns_pr_1 removed the documents and metadata of ns_pr_10 (which then failed its own drop with
    // "Expected [indexes] to be empty"). The storage layout is upstream's: a collection's documents in
    // "databases.<db>.<coll>", its metadata in "meta.<db>.<coll>", its indexes in "<db>.<coll>._index_<i>".
    static final class ExactDropH2Backend extends H2Backend {
        ExactDropH2Backend(MVStore store, Clock clock) {
            super(store, clock);  // opens the stored databases through openOrCreateDatabase below
        }

        @Override
        protected MongoDatabase openOrCreateDatabase(String name) {
            return new ExactDropH2Database(name, getMvStore(), getCursorRegistry());
        }

        private static final List<String> MAP_PREFIXES = List.of("databases.", "meta.", "");
        private static final String NAMESPACES = "system.namespaces";
        private static final String INDEXES = "system.indexes";

        // The names of the store's maps that start with `prefix`. MVStore.getMapNames() lists every map of
        // every database (half a dozen per namespace), and a copy or a drop asked for it twice, so each cost
        // grew with the number of namespaces present. The store's meta map keeps "name.<map>" keys in order,
        // so the maps of one prefix are one range of it.
        static List<String> mapsStartingWith(MVStore store, String prefix) {
            String from = DataUtils.META_NAME + prefix;
            List<String> out = new ArrayList<>();
            for (java.util.Iterator<String> it = store.getMetaMap().keyIterator(from); it.hasNext(); ) {
                String key = it.next();
                if (!key.startsWith(from)) {
                    break;
                }
                out.add(key.substring(DataUtils.META_NAME.length()));
            }
            return out;
        }

        // A database "exists" when it has a collection: resolving a name (any command on it) makes its
        // empty system.namespaces map, and a copy cut short by a crash leaves maps without namespaces.
        boolean hasCollections(String db) {
            String name = "databases." + db + "." + NAMESPACES;
            return getMvStore().hasMap(name) && !getMvStore().openMap(name).isEmpty();
        }

        /**
         * Every map of database `from` (documents, collection metadata, unique indexes' entries, and its
         * system.indexes/system.namespaces, whose namespaces are rewritten) copied under `to`'s names, then
         * one commit. The caller holds both databases' write locks, so no command changes `from` meanwhile.
         * system.namespaces is written last: until it is, `to` has no collection (after a crash too), and
         * the leftovers are removed by the next copy into `to`.
         */
        /** Returns the milliseconds of its commit (the maps' new pages written). */
        long copyDatabase(String from, String to) {
            MVStore store = getMvStore();
            if (!hasCollections(from)) {
                throw new MongoServerError(26, "NamespaceNotFound", "database " + from + " does not exist");
            }
            if (hasCollections(to)) {
                throw new MongoServerError(48, "NamespaceExists", "database " + to + " already exists");
            }
            boolean leftovers = MAP_PREFIXES.stream().anyMatch(p -> !mapsStartingWith(store, p + to + ".").isEmpty());
            if (leftovers || listDatabaseNames().contains(to)) {
                dropDatabase(to);  // resolved but empty, or a copy cut short: no collection is lost
            }
            List<String[]> maps = new ArrayList<>();  // {source map, target map, collection}
            Set<String> taken = new java.util.HashSet<>();
            for (String prefix : MAP_PREFIXES) {
                for (String map : mapsStartingWith(store, prefix + from + ".")) {
                    if (taken.add(map)) {  // (the first prefix a name has decides what it is, as before)
                        String rest = map.substring((prefix + from + ".").length());
                        maps.add(new String[] {map, prefix + to + "." + rest, prefix.isEmpty() ? "" : rest});
                    }
                }
            }
            String namespaces = "databases." + from + "." + NAMESPACES;
            maps.sort((a, b) -> Boolean.compare(a[0].equals(namespaces), b[0].equals(namespaces)));
            for (String[] m : maps) {
                MVMap<Object, Object> source = store.openMap(m[0]);
                MVMap<Object, Object> target = m[2].isEmpty() ? ExactDropH2Database.openIndexMap(store, m[1])
                        : store.openMap(m[1]);
                if (m[2].isEmpty()) {
                    copyPages(source, target);  // a unique index's entries
                    continue;
                }
                boolean isNamespaces = m[0].equals(namespaces);
                boolean isIndexes = m[0].startsWith("databases.") && m[2].equals(INDEXES);
                for (Map.Entry<Object, Object> e : source.entrySet()) {
                    Object key = copyOf(e.getKey());
                    Object value = copyOf(e.getValue());
                    if (isNamespaces || isIndexes) {
                        // {name: "<db>.<coll>"} keyed by that name; {ns: "<db>.<coll>", ...} keyed by a UUID
                        Document d = (Document) value;
                        String field = isNamespaces ? "name" : "ns";
                        d.put(field, renamed(String.valueOf(d.get(field)), from, to));
                        if (isNamespaces) {
                            key = renamed(String.valueOf(key), from, to);
                        }
                    }
                    target.put(key, value);
                }
            }
            long copied = System.nanoTime();
            commit();
            resolveDatabase(to);  // opens its collections and unique indexes from the maps just written
            return (System.nanoTime() - copied) / 1_000_000;
        }

        // A unique index's map copied page by page, as H2's own compaction copies a map (MVMap.copyFrom,
        // package-private in the pinned H2): put() would compare its KeyValue keys by Java-serializing both
        // at every step of each binary search, which made that part of a copy take seconds. The pages' keys
        // (KeyValue, immutable) and positions (_id values, never changed in place) are shared, not copied.
        private static final java.lang.reflect.Method COPY_FROM;

        static {
            try {
                COPY_FROM = MVMap.class.getDeclaredMethod("copyFrom", MVMap.class);
                COPY_FROM.setAccessible(true);
            } catch (NoSuchMethodException e) {
                throw new ExceptionInInitializerError(e);
            }
        }

        private static void copyPages(MVMap<Object, Object> source, MVMap<Object, Object> target) {
            if (source.isEmpty()) {
                return;
            }
            try {
                COPY_FROM.invoke(target, source);
            } catch (ReflectiveOperationException e) {
                throw new MongoServerError(1, "InternalError", "cannot copy " + source.getName() + ": " + e);
            }
        }

        // Stored documents are the backend's own objects (the page cache hands them out) and an update
        // changes them in place: never share one between two maps.
        private static Object copyOf(Object v) {
            return v instanceof Document ? ((Document) v).cloneDeeply() : v;
        }

        private static String renamed(String namespace, String from, String to) {
            if (!namespace.startsWith(from + ".")) {
                throw new MongoServerError(1, "InternalError", "unexpected namespace " + namespace + " in " + from);
            }
            return to + namespace.substring(from.length());
        }
    }

    static final class ExactDropH2Database extends H2Database {
        // The store, for openOrCreateUniqueIndex: upstream's constructor opens the indexes before ours runs.
        private static volatile MVStore opened;
        private final MVStore store;

        ExactDropH2Database(String name, MVStore store, CursorRegistry cursors) {
            super(name, remember(store), cursors);
            this.store = store;
        }

        private static MVStore remember(MVStore store) {
            opened = store;
            return store;
        }

        // Upstream opens a unique index's map with H2's default key type; opened here first with IndexKeys
        // (the same bytes on disk, the same order), upstream's openMap of that name gets this instance.
        @Override
        protected de.bwaldvogel.mongo.backend.Index<Object> openOrCreateUniqueIndex(
                String collectionName, String indexName, List<de.bwaldvogel.mongo.backend.IndexKey> keys,
                boolean sparse) {
            openIndexMap(opened, getFullCollectionNamespace(collectionName) + "._index_" + indexName);
            return super.openOrCreateUniqueIndex(collectionName, indexName, keys, sparse);
        }

        static MVMap<Object, Object> openIndexMap(MVStore store, String name) {
            return store.openMap(name, new MVMap.Builder<Object, Object>().keyType(indexKeys()));
        }

        @Override
        public void drop(Oplog oplog) {
            String name = getDatabaseName();
            String meta = "meta." + name + ".";
            List<String> collections = new ArrayList<>();
            for (String map : ExactDropH2Backend.mapsStartingWith(store, meta)) {
                collections.add(map.substring(meta.length()));
            }
            // as upstream's AbstractMongoDatabase.drop: system.indexes last, the others' indexes are in it
            collections.sort((a, b) -> Boolean.compare(a.startsWith("system."), b.startsWith("system.")));
            for (String collection : collections) {
                if (resolveCollection(collection, false) != null) {
                    dropCollection(collection, oplog);
                }
            }
            for (String prefix : List.of(name + ".", "databases." + name + ".", meta)) {
                for (String map : ExactDropH2Backend.mapsStartingWith(store, prefix)) {
                    store.removeMap(map);
                }
            }
        }
    }

    // A unique index's keys are upstream's KeyValue, which H2's ObjectDataType orders by their Java
    // serialization and so serializes both at every step of each binary search (most of an insert's time).
    // The same order, the same bytes written; the key being searched for is serialized once per search,
    // not once per step (it is the same object throughout, and never changed while it is looked up).
    // One per map, as H2 makes its default key type (an ObjectDataType keeps a hint of the last type seen).
    static org.h2.mvstore.type.ObjectDataType indexKeys() {
        return new IndexKeys();
    }

    static final class IndexKeys extends org.h2.mvstore.type.ObjectDataType {
        private final ThreadLocal<Object[]> last = ThreadLocal.withInitial(() -> new Object[4]);

        @Override
        public int compare(Object a, Object b) {
            if (a == b || !(a instanceof de.bwaldvogel.mongo.backend.KeyValue)
                    || !(b instanceof de.bwaldvogel.mongo.backend.KeyValue)) {
                return super.compare(a, b);
            }
            Object[] cache = last.get();  // {a, bytes of a, b, bytes of b}: the searched key is one of them
            byte[] ba = cache[0] == a ? (byte[]) cache[1] : serialize(a);
            byte[] bb = cache[2] == b ? (byte[]) cache[3] : serialize(b);
            cache[0] = a;
            cache[1] = ba;
            cache[2] = b;
            cache[3] = bb;
            return compareNotNull(ba, bb);
        }
    }

    static void usage(String why) {
        System.err.println("localdev: MongoJavaServer: " + why);
        System.exit(2);
    }

    static MongoServerError unauthorized(String message) {
        return new MongoServerError(13, "Unauthorized", message);
    }

    // -- users -------------------------------------------------------------------------------

    static final class Credential {
        final byte[] salt;
        final int iterations;
        final byte[] storedKey;
        final byte[] serverKey;

        Credential(byte[] salt, int iterations, byte[] storedKey, byte[] serverKey) {
            this.salt = salt;
            this.iterations = iterations;
            this.storedKey = storedKey;
            this.serverKey = serverKey;
        }
    }

    static final class User {
        final String db;
        final String name;
        final boolean root;
        final Map<String, Credential> mechanisms;  // "SCRAM-SHA-1" / "SCRAM-SHA-256"
        final int maxConnections;  // authenticated connections at once; 0: no limit

        User(String db, String name, boolean root, Map<String, Credential> mechanisms, int maxConnections) {
            this.db = db;
            this.name = name;
            this.root = root;
            this.mechanisms = mechanisms;
            this.maxConnections = maxConnections;
        }

        String key() {
            return db + "." + name;
        }
    }

    // The users file is a log: each createUser/updateUser appends the user's line, each drop appends a line of
    // only its database and name; a later line of a key replaces the earlier ones. Rewriting the whole file
    // at every change (as this did) cost each namespace create and delete a write of every user and a
    // rename, which grew with the number of namespaces. The file is compacted (rewritten whole, to a
    // temporary file that is renamed over it) when it holds more than twice the lines it needs, at start,
    // and after an append failed midway. Only an append's whole line counts: a line cut short (an OS crash,
    // a full disk) was never acknowledged, and is dropped when the file is read.
    static final class Users {
        private final Path file;
        private final Map<String, User> byKey = new ConcurrentHashMap<>();
        private final User root;
        private int lines;  // in the file now
        private boolean rewrite;  // an append failed: the file may end in part of a line

        Users(Path file, String rootUser, String rootPassword) throws IOException {
            this.file = file;
            this.root = new User("admin", rootUser, true, Scram.credentials(rootUser, rootPassword), 0);
            if (Files.exists(file)) {
                String text = Files.readString(file, StandardCharsets.UTF_8);
                String whole = text.substring(0, text.lastIndexOf('\n') + 1);
                for (String line : whole.split("\n")) {
                    if (line.isBlank()) {
                        continue;
                    }
                    lines++;
                    String[] f = line.split("\t");
                    if (f.length == 2) {  // a drop
                        byKey.remove(f[0] + "." + f[1]);
                        continue;
                    }
                    Map<String, Credential> m = new LinkedHashMap<>();
                    int i = 2;
                    for (; i + 4 < f.length + 1; i += 5) {
                        Base64.Decoder d = Base64.getDecoder();
                        m.put(f[i], new Credential(d.decode(f[i + 1]), Integer.parseInt(f[i + 2]),
                                d.decode(f[i + 3]), d.decode(f[i + 4])));
                    }
                    // A trailing "max=N" field (absent in files written before the limit existed: no limit)
                    int max = i < f.length && f[i].startsWith("max=") ? Integer.parseInt(f[i].substring(4)) : 0;
                    User u = new User(f[0], f[1], false, m, max);
                    byKey.put(u.key(), u);
                }
                if (lines > byKey.size() || whole.length() < text.length()) {
                    save();
                }
            }
        }

        User get(String db, String name) {
            if (root.db.equals(db) && root.name.equals(name)) {
                return root;
            }
            return byKey.get(db + "." + name);
        }

        boolean current(User u) {
            return u.root || byKey.get(u.key()) == u;
        }

        synchronized void put(User u) throws IOException {
            byKey.put(u.key(), u);
            append(List.of(line(u)));
        }

        synchronized boolean remove(String db, String name) throws IOException {
            boolean removed = byKey.remove(db + "." + name) != null;
            if (removed) {
                append(List.of(db + "\t" + name + "\n"));
            }
            return removed;
        }

        synchronized int removeAll(String db) throws IOException {
            List<String> keys = new ArrayList<>();
            List<String> drops = new ArrayList<>();
            for (User u : byKey.values()) {
                if (u.db.equals(db)) {
                    keys.add(u.key());
                    drops.add(u.db + "\t" + u.name + "\n");
                }
            }
            keys.forEach(byKey::remove);
            if (!drops.isEmpty()) {
                append(drops);
            }
            return keys.size();
        }

        List<User> inDatabase(String db) {
            List<User> out = new ArrayList<>();
            for (User u : byKey.values()) {
                if (u.db.equals(db)) {
                    out.add(u);
                }
            }
            return out;
        }

        private static String line(User u) {
            StringBuilder sb = new StringBuilder();
            Base64.Encoder e = Base64.getEncoder();
            sb.append(u.db).append('\t').append(u.name);
            for (Map.Entry<String, Credential> m : u.mechanisms.entrySet()) {
                Credential c = m.getValue();
                sb.append('\t').append(m.getKey()).append('\t').append(e.encodeToString(c.salt))
                        .append('\t').append(c.iterations).append('\t').append(e.encodeToString(c.storedKey))
                        .append('\t').append(e.encodeToString(c.serverKey));
            }
            if (u.maxConnections > 0) {
                sb.append("\tmax=").append(u.maxConnections);
            }
            return sb.append('\n').toString();
        }

        // Flushed to disk before the command is answered.
        private void append(List<String> more) throws IOException {
            if (rewrite || lines + more.size() > 2 * byKey.size() + 64) {
                save();
                return;
            }
            rewrite = true;  // until the whole of it is written and flushed
            try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                    StandardOpenOption.APPEND)) {
                ByteBuffer bytes = ByteBuffer.wrap(String.join("", more).getBytes(StandardCharsets.UTF_8));
                while (bytes.hasRemaining()) {
                    ch.write(bytes);
                }
                ch.force(false);
            }
            rewrite = false;
            lines += more.size();
        }

        // Written whole to a temporary file, flushed to disk, then renamed over the old one: a crash
        // leaves the old set or the new one, never a mix.
        private void save() throws IOException {
            StringBuilder sb = new StringBuilder();
            for (User u : byKey.values()) {
                sb.append(line(u));
            }
            Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                    StandardOpenOption.TRUNCATE_EXISTING)) {
                ByteBuffer bytes = ByteBuffer.wrap(sb.toString().getBytes(StandardCharsets.UTF_8));
                while (bytes.hasRemaining()) {
                    ch.write(bytes);
                }
                ch.force(true);
            }
            Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            lines = byKey.size();
            rewrite = false;
        }
    }

    // -- SCRAM (RFC 5802 / 7677, with MongoDB's SCRAM-SHA-1 password digest) -----------------

    static final class Scram {
        static final SecureRandom RANDOM = new SecureRandom();

        static String alg(String mechanism) {
            return mechanism.equals("SCRAM-SHA-1") ? "SHA-1" : "SHA-256";
        }

        static String hmacName(String mechanism) {
            return mechanism.equals("SCRAM-SHA-1") ? "HmacSHA1" : "HmacSHA256";
        }

        // MongoDB's SCRAM-SHA-1 runs on the hex MD5 of "user:mongo:password"; SCRAM-SHA-256 on the
        // SASLprep'd password (NFKC here, which is what SASLprep does to the passwords localdev makes).
        static String prepare(String mechanism, String user, String password) throws Exception {
            if (mechanism.equals("SCRAM-SHA-1")) {
                byte[] d = MessageDigest.getInstance("MD5")
                        .digest((user + ":mongo:" + password).getBytes(StandardCharsets.UTF_8));
                StringBuilder sb = new StringBuilder();
                for (byte b : d) {
                    sb.append(String.format("%02x", b));
                }
                return sb.toString();
            }
            return java.text.Normalizer.normalize(password, java.text.Normalizer.Form.NFKC);
        }

        static Credential derive(String mechanism, String user, String password, byte[] salt, int iterations)
                throws Exception {
            String pbkdf2 = mechanism.equals("SCRAM-SHA-1") ? "PBKDF2WithHmacSHA1" : "PBKDF2WithHmacSHA256";
            int bits = mechanism.equals("SCRAM-SHA-1") ? 160 : 256;
            PBEKeySpec spec = new PBEKeySpec(prepare(mechanism, user, password).toCharArray(), salt, iterations, bits);
            byte[] salted = SecretKeyFactory.getInstance(pbkdf2).generateSecret(spec).getEncoded();
            byte[] clientKey = hmac(mechanism, salted, "Client Key");
            byte[] storedKey = MessageDigest.getInstance(alg(mechanism)).digest(clientKey);
            return new Credential(salt, iterations, storedKey, hmac(mechanism, salted, "Server Key"));
        }

        // RFC 5802's and 7677's minimum, not MongoDB's 10 000 / 15 000: every password here is a random secret
        // of 24+ characters that no iteration count makes harder to guess, while each count is paid again by
        // every client connection (and by every namespace create, here). Files written with other counts
        // keep theirs: a credential carries its own.
        static final int ITERATIONS = 4096;

        static Map<String, Credential> credentials(String user, String password) {
            try {
                Map<String, Credential> m = new LinkedHashMap<>();
                m.put("SCRAM-SHA-1", derive("SCRAM-SHA-1", user, password, random(16), ITERATIONS));
                m.put("SCRAM-SHA-256", derive("SCRAM-SHA-256", user, password, random(28), ITERATIONS));
                return m;
            } catch (Exception e) {
                throw new IllegalStateException("cannot derive SCRAM keys: " + e, e);
            }
        }

        static byte[] hmac(String mechanism, byte[] key, String data) throws Exception {
            return hmac(mechanism, key, data.getBytes(StandardCharsets.UTF_8));
        }

        static byte[] hmac(String mechanism, byte[] key, byte[] data) throws Exception {
            Mac mac = Mac.getInstance(hmacName(mechanism));
            mac.init(new SecretKeySpec(key, hmacName(mechanism)));
            return mac.doFinal(data);
        }

        static byte[] random(int n) {
            byte[] b = new byte[n];
            RANDOM.nextBytes(b);
            return b;
        }
    }

    // One SCRAM conversation of one connection.
    static final class Conversation {
        final String mechanism;
        final String db;
        final User user;  // null: unknown user; the conversation runs on and fails at the proof
        final Credential credential;
        final String clientFirstBare;
        final String serverFirst;
        final String nonce;
        boolean proven;

        Conversation(String mechanism, String db, User user, Credential credential, String clientFirstBare,
                     String serverFirst, String nonce) {
            this.mechanism = mechanism;
            this.db = db;
            this.user = user;
            this.credential = credential;
            this.clientFirstBare = clientFirstBare;
            this.serverFirst = serverFirst;
            this.nonce = nonce;
        }
    }

    static final class ChannelState {
        volatile User user;
        volatile Conversation conversation;
    }

    // -- the wrapped backend -------------------------------------------------------------------

    static final class AuthBackend implements MongoBackend {
        private static final Set<String> BEFORE_AUTH = Set.of(
                "hello", "ismaster", "saslstart", "saslcontinue", "ping", "buildinfo", "logout", "endsessions");
        // Cluster-wide or server-wide commands a tenant may not run even on its own database.
        private static final Set<String> CLUSTER_ONLY = Set.of(
                "serverstatus", "getlog", "hostinfo", "getcmdlineopts", "currentop", "shutdown",
                "getfreemonitoringstatus", "replsetgetstatus", "createuser", "updateuser", "dropuser",
                "dropallusersfromdatabase", "usersinfo", "grantrolestouser", "revokerolesfromuser", "whatsmyuri",
                "localdevcopydatabase");
        // A tenant's commands on the admin database that concern only itself.
        private static final Set<String> TENANT_ON_ADMIN = Set.of(
                "listdatabases", "connectionstatus", "renamecollection", "endsessions");
        // After these the H2 store is committed, so an acknowledged write survives a kill -9.
        private static final Set<String> WRITES = Set.of(
                "insert", "update", "delete", "findandmodify", "create", "createindexes", "drop", "dropindexes",
                "dropdatabase", "renamecollection");

        private final ExactDropH2Backend delegate;
        private final Users users;
        // Per database: every command addressed to it holds the read lock, a copy from or into it the
        // write lock (so the copy sees no write half done, and none starts until it is committed).
        private final Map<String, ReentrantReadWriteLock> locks = new ConcurrentHashMap<>();
        private final Map<Channel, ChannelState> channels = new ConcurrentHashMap<>();
        private final Map<Long, String> cursorOwners = new ConcurrentHashMap<>();

        AuthBackend(ExactDropH2Backend delegate, Users users) {
            this.delegate = delegate;
            this.users = users;
        }

        private ChannelState state(Channel channel) {
            return channels.computeIfAbsent(channel, c -> new ChannelState());
        }

        @Override
        public Document handleMessage(MongoMessage message) {
            Document query = message.getDocument();
            String command = query.keySet().iterator().next();
            return handleCommand(message.getChannel(), message.getDatabaseName(), command, query);
        }

        @Override
        public Document handleCommand(Channel channel, String db, String command, Document query) {
            String lc = command.toLowerCase(Locale.ROOT);
            ChannelState st = state(channel);
            switch (lc) {
                case "hello":
                case "ismaster":
                    return hello(channel, st, db, lc, query);
                case "saslstart":
                    return saslStart(st, db, query);
                case "saslcontinue":
                    return saslContinue(channel, st, query);
                case "logout":
                    st.user = null;
                    return ok(new Document());
                default:
                    break;
            }
            User user = st.user;
            if (user != null && !users.current(user)) {
                st.user = user = null;  // dropped (or re-created) since this connection authenticated
            }
            if (user == null) {
                if (BEFORE_AUTH.contains(lc)) {
                    return delegate.handleCommand(channel, db, command, query);
                }
                throw unauthorized("command " + command + " requires authentication");
            }
            if (lc.equals("connectionstatus")) {
                return connectionStatus(user);
            }
            if (query.containsKey("startTransaction") || query.containsKey("autocommit")
                    || lc.equals("committransaction") || lc.equals("aborttransaction")) {
                throw new MongoServerError(20, "IllegalOperation",
                        "Transaction numbers are only allowed on a replica set member or mongos");
            }
            if (lc.equals("aggregate")) {
                refuseDottedProjections(query.get("pipeline"));
                if (isChangeStream(query.get("pipeline"))) {
                    throw new MongoServerError(40573, "Location40573", "change streams are not supported by "
                            + "mongo-java-server: its update events lack updateDescription and lose $inc and $unset");
                }
            }
            if (user.root && lc.equals("localdevcopydatabase")) {
                return copyDatabase(db, command, query);
            }
            List<Lock> held = new ArrayList<>();
            Document response;
            try {
                for (String name : lockedDatabases(user, db, lc, command, query)) {
                    Lock lock = lock(name).readLock();
                    lock.lock();
                    held.add(lock);
                }
                if (user.root) {
                    response = rootCommand(channel, db, command, lc, query);
                } else {
                    response = tenantCommand(channel, user, db, command, lc, query);
                }
                if (WRITES.contains(lc)) {
                    delegate.commit();
                }
            } finally {
                held.forEach(Lock::unlock);
            }
            if (lc.equals("insert")) {
                fixInsertCount(query, response);
            }
            return response;
        }

        private ReentrantReadWriteLock lock(String db) {
            return locks.computeIfAbsent(db, k -> new ReentrantReadWriteLock());
        }

        // The databases a command may touch, in name order (every taker locks in that order: no deadlock).
        // A tenant touches only its own; renameCollection (on admin) names its databases in its namespaces.
        private static List<String> lockedDatabases(User user, String db, String lc, String command, Document query) {
            java.util.TreeSet<String> names = new java.util.TreeSet<>();
            names.add(user.root ? db : user.db);
            if (lc.equals("renamecollection")) {
                for (Object ns : new Object[] {query.get(command), query.get("to")}) {
                    String s = String.valueOf(ns);
                    names.add(s.contains(".") ? s.substring(0, s.indexOf('.')) : s);
                }
            }
            return new ArrayList<>(names);
        }

        // localdevCopyDatabase {from, to} on admin, root only: a storage-level copy of one database (its
        // collections, documents and indexes) into a new one, taken under both databases' write locks.
        private Document copyDatabase(String db, String command, Document query) {
            if (!db.equals("admin")) {
                throw unauthorized(command + " may only be run against the admin database");
            }
            Object from = query.get("from");
            Object to = query.get("to");
            for (Object name : new Object[] {from, to}) {
                if (!(name instanceof String) || ((String) name).isEmpty() || ((String) name).contains(".")
                        || Set.of("admin", "local", "config", "databases", "meta").contains(name)) {
                    throw new MongoServerError(2, "BadValue", command + " needs from and to: names of user "
                            + "databases (not " + name + ")");
                }
            }
            if (from.equals(to)) {
                throw new MongoServerError(2, "BadValue", command + ": from and to are the same database");
            }
            java.util.TreeSet<String> names = new java.util.TreeSet<>(List.of((String) from, (String) to));
            List<Lock> held = new ArrayList<>();
            try {
                for (String name : names) {
                    Lock lock = lock(name).writeLock();
                    lock.lock();
                    held.add(lock);
                }
                long start = System.nanoTime();
                long commitMillis = delegate.copyDatabase((String) from, (String) to);
                return ok(new Document("millis", (System.nanoTime() - start) / 1_000_000)
                        .append("commitMillis", commitMillis));
            } finally {
                held.forEach(Lock::unlock);
            }
        }

        // Upstream reports every document as inserted even when some failed (a duplicate key, say).
        private static void fixInsertCount(Document query, Document response) {
            Object errors = response.get("writeErrors");
            Object documents = query.get("documents");
            if (!(errors instanceof List) || ((List<?>) errors).isEmpty() || !(documents instanceof List)) {
                return;
            }
            List<?> errs = (List<?>) errors;
            boolean ordered = !Boolean.FALSE.equals(query.get("ordered"));
            int n = ((List<?>) documents).size() - errs.size();
            if (ordered && errs.get(0) instanceof Document && ((Document) errs.get(0)).get("index") instanceof Number) {
                n = ((Number) ((Document) errs.get(0)).get("index")).intValue();  // an ordered insert stops there
            }
            response.put("n", n);
        }

        private static boolean isChangeStream(Object pipeline) {
            return pipeline instanceof List && !((List<?>) pipeline).isEmpty()
                    && ((List<?>) pipeline).get(0) instanceof Document
                    && ((Document) ((List<?>) pipeline).get(0)).containsKey("$changeStream");
        }

        // Upstream's $project copies `a.b` wrongly when `a` is an array ({a: {b: [..]}} instead of
        // {a: [{b: ..}]}); it cannot be told from the pipeline whether `a` will be one, so refuse them all.
        private static void refuseDottedProjections(Object pipeline) {
            if (!(pipeline instanceof List)) {
                return;
            }
            for (Object stage : (List<?>) pipeline) {
                if (!(stage instanceof Document)) {
                    continue;
                }
                for (Map.Entry<String, Object> e : ((Document) stage).entrySet()) {
                    if (e.getKey().equals("$project") && e.getValue() instanceof Document) {
                        for (Map.Entry<String, Object> f : ((Document) e.getValue()).entrySet()) {
                            boolean flag = f.getValue() instanceof Number || f.getValue() instanceof Boolean;
                            if (flag && f.getKey().contains(".")) {
                                throw new MongoServerError(2, "BadValue", "$project of the dotted path '" + f.getKey()
                                        + "' is not supported by mongo-java-server (it is wrong through arrays): "
                                        + "project the top-level field, or use $addFields with $map");
                            }
                        }
                    }
                    if (e.getValue() instanceof Document) {
                        for (Map.Entry<String, Object> f : ((Document) e.getValue()).entrySet()) {
                            if (f.getValue() instanceof List) {
                                refuseDottedProjections(f.getValue());  // $facet, $lookup pipelines
                            }
                        }
                    }
                }
            }
        }

        private static Document connectionStatus(User user) {
            String role = user.root ? "root" : "readWrite";
            return ok(new Document("authInfo", new Document()
                    .append("authenticatedUsers", List.of(new Document("user", user.name).append("db", user.db)))
                    .append("authenticatedUserRoles", List.of(new Document("role", role).append("db", user.db)))));
        }

        private Document rootCommand(Channel channel, String db, String command, String lc, Document query) {
            try {
                switch (lc) {
                    case "createuser":
                    case "updateuser":
                        return saveUser(db, lc, query);
                    case "dropuser": {
                        if (!users.remove(db, String.valueOf(query.get(command)))) {
                            throw new MongoServerError(11, "UserNotFound", "User '" + query.get(command) + "@" + db
                                    + "' not found");
                        }
                        return ok(new Document());
                    }
                    case "dropallusersfromdatabase":
                        return ok(new Document("n", users.removeAll(db)));
                    case "usersinfo": {
                        List<Document> list = new ArrayList<>();
                        for (User u : users.inDatabase(db)) {
                            list.add(new Document("_id", u.key()).append("user", u.name).append("db", u.db)
                                    .append("roles", List.of(new Document("role", "readWrite").append("db", u.db)))
                                    .append("mechanisms", new ArrayList<>(u.mechanisms.keySet())));
                        }
                        return ok(new Document("users", list));
                    }
                    default:
                        return delegate.handleCommand(channel, db, command, query);
                }
            } catch (IOException e) {
                throw new MongoServerError(1, "InternalError", "cannot save the users file: " + e.getMessage());
            }
        }

        private Document saveUser(String db, String lc, Document query) throws IOException {
            String name = String.valueOf(query.get(lc.equals("createuser") ? "createUser" : "updateUser"));
            Object pwd = query.get("pwd");
            if (!(pwd instanceof String) || ((String) pwd).isEmpty()) {
                throw new MongoServerError(2, "BadValue", "a password (pwd) is required");
            }
            Object roles = query.get("roles");
            if (roles instanceof List) {
                for (Object r : (List<?>) roles) {
                    boolean fits = r instanceof Document && "readWrite".equals(((Document) r).get("role"))
                            && db.equals(((Document) r).getOrDefault("db", db));
                    fits = fits || "readWrite".equals(r);
                    if (!fits) {
                        throw new MongoServerError(2, "BadValue", "localdev's users have readWrite on their own "
                                + "database only, not " + r);
                    }
                }
            }
            if (db.equals("admin") || db.equals("local") || db.equals("config")) {
                throw new MongoServerError(2, "BadValue", "users of database " + db + " are not supported");
            }
            boolean exists = users.get(db, name) != null;
            if (lc.equals("createuser") && exists) {
                throw new MongoServerError(51003, "Location51003", "User \"" + name + "@" + db + "\" already exists");
            }
            if (lc.equals("updateuser") && !exists) {
                throw new MongoServerError(11, "UserNotFound", "User " + name + "@" + db + " not found");
            }
            users.put(new User(db, name, false, Scram.credentials(name, (String) pwd), maxConnections(query)));
            return ok(new Document());
        }

        // customData.maxConnections: MongoDB itself keeps customData and ignores it, so the same createUser
        // works there; here it is the namespace's connection budget.
        private static int maxConnections(Document query) {
            Object custom = query.get("customData");
            Object max = custom instanceof Document ? ((Document) custom).get("maxConnections") : null;
            if (max == null) {
                return 0;
            }
            if (!(max instanceof Number) || ((Number) max).intValue() < 1) {
                throw new MongoServerError(2, "BadValue", "customData.maxConnections must be a whole number >= 1");
            }
            return ((Number) max).intValue();
        }

        // One authenticated connection more for `user` on `channel`, or the refusal a pool that is too big
        // for its namespace's budget gets (PostgreSQL's wording, as that role's limit gives the same error).
        private synchronized void admit(Channel channel, ChannelState st, User user) {
            if (user.maxConnections > 0) {
                int open = 0;
                for (Map.Entry<Channel, ChannelState> e : channels.entrySet()) {
                    User other = e.getValue().user;
                    if (e.getKey() != channel && other != null && other.key().equals(user.key())) {
                        open++;
                    }
                }
                if (open >= user.maxConnections) {
                    throw new MongoServerError(8000, "TooManyConnections", "too many connections for user \""
                            + user.name + "\" (its limit is " + user.maxConnections + ")");
                }
            }
            st.user = user;
        }

        private Document tenantCommand(Channel channel, User user, String db, String command, String lc,
                                       Document query) {
            if (CLUSTER_ONLY.contains(lc)) {
                throw unauthorized("not authorized on " + db + " to execute command { " + command + " }");
            }
            if (db.equals("admin") && TENANT_ON_ADMIN.contains(lc)) {
                return tenantAdminCommand(channel, user, command, lc, query);
            }
            if (!db.equals(user.db)) {
                throw unauthorized("not authorized on " + db + " to execute command { " + command + " }");
            }
            if (lc.equals("getmore")) {
                Object id = query.get(command);
                long cursorId = id instanceof Number ? ((Number) id).longValue() : -1;
                if (!user.key().equals(cursorOwners.get(cursorId))) {
                    throw new MongoServerError(43, "CursorNotFound", "cursor id " + cursorId + " not found");
                }
            } else if (lc.equals("killcursors")) {
                Object ids = query.get("cursors");
                if (ids instanceof List) {
                    for (Object id : (List<?>) ids) {
                        if (!(id instanceof Number) || !user.key().equals(cursorOwners.get(((Number) id).longValue()))) {
                            throw unauthorized("not authorized to kill cursor " + id);
                        }
                    }
                    for (Object id : (List<?>) ids) {
                        cursorOwners.remove(((Number) id).longValue());
                    }
                }
            } else if (lc.equals("aggregate")) {
                checkPipeline(user, query.get("pipeline"));
            }
            Document response = delegate.handleCommand(channel, db, command, query);
            Object cursor = response.get("cursor");
            if (cursor instanceof Document) {
                Object id = ((Document) cursor).get("id");
                long cursorId = id instanceof Number ? ((Number) id).longValue() : 0;
                if (cursorId != 0) {
                    cursorOwners.put(cursorId, user.key());
                } else if (lc.equals("getmore")) {
                    cursorOwners.remove(((Number) query.get(command)).longValue());
                }
            }
            return response;
        }

        // $out/$merge may name another database; $lookup, $graphLookup, $unionWith, $facet may nest them.
        private void checkPipeline(User user, Object pipeline) {
            if (!(pipeline instanceof List)) {
                return;
            }
            for (Object stage : (List<?>) pipeline) {
                if (!(stage instanceof Document)) {
                    continue;
                }
                for (Map.Entry<String, Object> e : ((Document) stage).entrySet()) {
                    checkTarget(user, e.getKey(), e.getValue());
                }
            }
        }

        private void checkTarget(User user, String key, Object value) {
            if (value instanceof Document) {
                Document d = (Document) value;
                Object into = d.get("into");
                if (key.equals("$merge") && into instanceof Document) {
                    checkDb(user, ((Document) into).get("db"));
                }
                if (key.equals("$out") || key.equals("$lookup") || key.equals("$unionWith")
                        || key.equals("$graphLookup")) {
                    checkDb(user, d.get("db"));
                    Object from = d.get("from");
                    if (from instanceof Document) {
                        checkDb(user, ((Document) from).get("db"));
                    }
                }
                if (key.equals("$changeStream") && Boolean.TRUE.equals(d.get("allChangesForCluster"))) {
                    throw unauthorized("not authorized to watch the whole cluster");
                }
                for (Map.Entry<String, Object> e : d.entrySet()) {
                    if (e.getValue() instanceof List && (e.getKey().equals("pipeline") || key.equals("$facet"))) {
                        checkPipeline(user, e.getValue());
                    }
                }
            }
        }

        private void checkDb(User user, Object db) {
            if (db != null && !user.db.equals(db)) {
                throw unauthorized("not authorized on " + db);
            }
        }

        private Document tenantAdminCommand(Channel channel, User user, String command, String lc, Document query) {
            switch (lc) {
                case "listdatabases": {
                    Document response = delegate.handleCommand(channel, "admin", command, query);
                    List<Document> mine = new ArrayList<>();
                    Object all = response.get("databases");
                    if (all instanceof List) {
                        for (Object d : (List<?>) all) {
                            if (d instanceof Document && user.db.equals(((Document) d).get("name"))) {
                                mine.add((Document) d);
                            }
                        }
                    }
                    response.put("databases", mine);
                    return response;
                }
                case "renamecollection": {
                    checkNamespace(user, query.get(command));
                    checkNamespace(user, query.get("to"));
                    return delegate.handleCommand(channel, "admin", command, query);
                }
                default:
                    return delegate.handleCommand(channel, "admin", command, query);
            }
        }

        private void checkNamespace(User user, Object namespace) {
            String ns = String.valueOf(namespace);
            if (!ns.startsWith(user.db + ".")) {
                throw unauthorized("not authorized on " + ns);
            }
        }

        // -- handshake and SASL ----------------------------------------------------------------

        private Document hello(Channel channel, ChannelState st, String db, String lc, Document query) {
            Document response = delegate.handleCommand(channel, db, "ismaster", query);
            if (lc.equals("hello")) {
                response.remove("ismaster");
                response.put("isWritablePrimary", Boolean.TRUE);
            }
            response.put("helloOk", Boolean.TRUE);
            response.put("logicalSessionTimeoutMinutes", 30);
            Object mechs = query.get("saslSupportedMechs");
            if (mechs instanceof String && ((String) mechs).contains(".")) {
                String s = (String) mechs;
                User u = users.get(s.substring(0, s.indexOf('.')), s.substring(s.indexOf('.') + 1));
                if (u != null) {
                    response.put("saslSupportedMechs", new ArrayList<>(u.mechanisms.keySet()));
                }
            }
            Object spec = query.get("speculativeAuthenticate");
            if (spec instanceof Document) {
                Document sd = (Document) spec;
                if (sd.containsKey("saslStart")) {
                    try {
                        Object sdb = sd.getOrDefault("db", db);
                        Document first = saslStart(st, String.valueOf(sdb), sd);
                        first.remove("ok");
                        response.put("speculativeAuthenticate", first);
                    } catch (MongoServerError e) {
                        // MongoDB leaves it out, and the driver authenticates the long way (and fails there)
                    }
                }
            }
            return response;
        }

        private Document saslStart(ChannelState st, String db, Document query) {
            String mechanism = String.valueOf(query.get("mechanism"));
            if (!mechanism.equals("SCRAM-SHA-256") && !mechanism.equals("SCRAM-SHA-1")) {
                throw new MongoServerError(334, "MechanismUnavailable", "Received authentication for mechanism "
                        + mechanism + " which is not enabled");
            }
            String payload = new String(bytes(query.get("payload")), StandardCharsets.UTF_8);
            // gs2 header: no channel binding ("n,," or "y,,"), no authzid
            if (!(payload.startsWith("n,,") || payload.startsWith("y,,"))) {
                throw authFailed();
            }
            String bare = payload.substring(3);
            Map<String, String> attrs = attributes(bare);
            String name = attrs.get("n");
            String clientNonce = attrs.get("r");
            if (name == null || clientNonce == null) {
                throw authFailed();
            }
            name = name.replace("=2C", ",").replace("=3D", "=");
            User user = users.get(db, name);
            Credential cred = user == null ? null : user.mechanisms.get(mechanism);
            // an unknown user gets a made-up salt, so the answer does not tell which users exist
            byte[] salt = cred != null ? cred.salt : Scram.random(mechanism.equals("SCRAM-SHA-1") ? 16 : 28);
            int iterations = cred != null ? cred.iterations : Scram.ITERATIONS;
            String nonce = clientNonce + Base64.getEncoder().encodeToString(Scram.random(24));
            String serverFirst = "r=" + nonce + ",s=" + Base64.getEncoder().encodeToString(salt) + ",i=" + iterations;
            st.conversation = new Conversation(mechanism, db, cred == null ? null : user, cred, bare, serverFirst, nonce);
            st.user = null;
            return ok(new Document("conversationId", 1).append("done", Boolean.FALSE)
                    .append("payload", new BinData(serverFirst.getBytes(StandardCharsets.UTF_8))));
        }

        private Document saslContinue(Channel channel, ChannelState st, Document query) {
            Conversation c = st.conversation;
            if (c == null) {
                throw authFailed();
            }
            if (c.proven) {  // the client's empty last step, when it did not ask to skip it
                st.conversation = null;
                admit(channel, st, c.user);
                return ok(new Document("conversationId", 1).append("done", Boolean.TRUE)
                        .append("payload", new BinData(new byte[0])));
            }
            st.conversation = null;
            String payload = new String(bytes(query.get("payload")), StandardCharsets.UTF_8);
            int p = payload.lastIndexOf(",p=");
            if (p < 0 || c.user == null) {
                throw authFailed();
            }
            String withoutProof = payload.substring(0, p);
            Map<String, String> attrs = attributes(payload);
            if (!c.nonce.equals(attrs.get("r"))) {
                throw authFailed();
            }
            try {
                byte[] proof = Base64.getDecoder().decode(payload.substring(p + 3));
                String authMessage = c.clientFirstBare + "," + c.serverFirst + "," + withoutProof;
                byte[] signature = Scram.hmac(c.mechanism, c.credential.storedKey, authMessage);
                if (proof.length != signature.length) {
                    throw authFailed();
                }
                byte[] clientKey = new byte[proof.length];
                for (int i = 0; i < proof.length; i++) {
                    clientKey[i] = (byte) (proof[i] ^ signature[i]);
                }
                byte[] stored = MessageDigest.getInstance(Scram.alg(c.mechanism)).digest(clientKey);
                if (!MessageDigest.isEqual(stored, c.credential.storedKey)) {
                    throw authFailed();
                }
                byte[] serverSignature = Scram.hmac(c.mechanism, c.credential.serverKey, authMessage);
                String serverFinal = "v=" + Base64.getEncoder().encodeToString(serverSignature);
                Object options = query.get("options");
                boolean skipEmpty = options instanceof Document
                        && Boolean.TRUE.equals(((Document) options).get("skipEmptyExchange"));
                if (skipEmpty) {
                    admit(channel, st, c.user);
                } else {
                    c.proven = true;
                    st.conversation = c;
                }
                return ok(new Document("conversationId", 1).append("done", skipEmpty)
                        .append("payload", new BinData(serverFinal.getBytes(StandardCharsets.UTF_8))));
            } catch (MongoServerError e) {
                throw e;
            } catch (Exception e) {
                throw authFailed();
            }
        }

        private static MongoServerError authFailed() {
            return new MongoServerError(18, "AuthenticationFailed", "Authentication failed.");
        }

        private static byte[] bytes(Object payload) {
            if (payload instanceof BinData) {
                return ((BinData) payload).getData();
            }
            if (payload instanceof byte[]) {
                return (byte[]) payload;
            }
            if (payload instanceof String) {
                return ((String) payload).getBytes(StandardCharsets.UTF_8);
            }
            throw authFailed();
        }

        private static Map<String, String> attributes(String s) {
            Map<String, String> m = new HashMap<>();
            for (String part : s.split(",")) {
                int eq = part.indexOf('=');
                if (eq == 1) {
                    m.put(part.substring(0, 1), part.substring(2));
                }
            }
            return m;
        }

        private static Document ok(Document d) {
            d.put("ok", 1.0);
            return d;
        }

        // -- everything else goes to the backend as it is --------------------------------------

        @Override
        public void handleClose(Channel channel) {
            channels.remove(channel);
            delegate.handleClose(channel);
        }

        @Override
        public QueryResult handleQuery(MongoQuery query) {
            // Legacy OP_QUERY reads (no current driver sends them): refused like any unauthorised read.
            ChannelState st = state(query.getChannel());
            User user = st.user;
            if (user == null || !users.current(user) || !(user.root || user.db.equals(query.getDatabaseName()))) {
                throw unauthorized("not authorized for query on " + query.getFullCollectionName());
            }
            return delegate.handleQuery(query);
        }

        @Override public void dropDatabase(String db) { delegate.dropDatabase(db); delegate.commit(); }
        @Override public Collection<Document> getCurrentOperations(MongoQuery q) { return delegate.getCurrentOperations(q); }
        @Override public Document getServerStatus() { return delegate.getServerStatus(); }
        @Override public void close() { delegate.close(); }
        @Override public void closeCursors(List<Long> ids) { delegate.closeCursors(ids); ids.forEach(cursorOwners::remove); }
        @Override public Clock getClock() { return delegate.getClock(); }
        @Override public void enableOplog() { delegate.enableOplog(); }
        @Override public void disableOplog() { delegate.disableOplog(); }
        @Override public MongoDatabase resolveDatabase(String db) { return delegate.resolveDatabase(db); }
        @Override public MongoBackend version(MongoVersion v) { delegate.version(v); return this; }
    }
}
