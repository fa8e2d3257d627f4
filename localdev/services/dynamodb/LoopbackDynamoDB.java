// Runs DynamoDB Local with its HTTP listener bound to one address (127.0.0.1 by default).
//
// DynamoDB Local has no bind-address option: its DynamoDBProxyServer builds a Jetty Server on
// a port, which listens on every interface. We build the server through DynamoDB Local's own
// command-line entry point, then, before start(), point every network connector of that
// (private) Jetty Server at the host given in -Dlocaldev.bindHost. Anything else on the command
// line goes to DynamoDB Local unchanged.
//
// -Dlocaldev.selfTest=true: listen on a free port instead of -port, answer one ListTables sent by this
// process, stop and exit 0. localdev runs it once at provision time to check the jar and to
// record an AppCDS class archive (-XX:ArchiveClassesAtExit) covering start-up and a request.
//
// -Dlocaldev.adminFile=PATH: also serve our admin endpoint on 127.0.0.1 (a free port), written with a random
// token to PATH (0600, beside the databases): POST /release?key=K&region=R with header X-Localdev-Token
// closes the database DynamoDB Local keeps open for that access key + region (SQLite connection, its queue
// thread and job pool) and deletes its file. DynamoDB Local opens one per key on the first request and never
// closes it before shutdown: about 4 threads, 1 fd and 1.2 MB per namespace ever served.
// POST /replace?key=K&region=R&from=FILE (same header) closes that database the same way, then puts a copy of
// FILE (a snapshot: a SQLite file nobody has open) in its place, so the key's next request opens the copy
// (`ns reset`). DynamoDB Local reads a database's tables from its file when it opens it, so a key's file can
// only be swapped while it is closed, which only this process can guarantee.
// POST /pragma?key=K&region=R&name=N (same header) reads one PRAGMA on that key's open database.
//
// -Dlocaldev.idleCloseSeconds=N: close a key's database once no request has used it for N seconds (0: never),
// and open it again at its next request (see Database below). DynamoDB Local keeps every database it opened
// open until shutdown, each with a SQLite connection and queue thread and three jobs that query it every
// second (GSI creation, GSI deletion, TTL expiry): 500 idle namespaces kept half a core busy.
//
// -Dlocaldev.sqlitePragmas="synchronous=OFF": run each PRAGMA on every database DynamoDB
// Local opens, first thing on its connection's queue. By default SQLite syncs its rollback journal and its
// file four times per written item (BatchWriteItem writes its items one transaction each): most of a bulk
// load's time.
//
// Exit codes: 0 after a clean stop (SIGTERM), 2 on bad arguments, 3 if the listener could not be
// bound to the requested host, 1 on any other start failure.

import java.io.File;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.reflect.Field;
import java.net.HttpURLConnection;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URL;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.regex.Pattern;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;

import org.eclipse.jetty.server.AbstractNetworkConnector;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;

import software.amazon.dynamodb.services.exceptions.AWSExceptionFactory;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.AbstractLocalDynamoDBServerHandler;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;
import software.amazon.dynamodb.services.local.server.LocalDynamoDBRequestHandler;
import software.amazon.dynamodb.services.local.shared.access.AmazonDynamoDBLocal;
import software.amazon.dynamodb.services.local.shared.access.LocalDBAccess;
import software.amazon.dynamodb.services.local.shared.access.LocalDBClient;
import software.amazon.dynamodb.services.local.shared.access.sqlite.SQLiteDBAccess;
import software.amazon.dynamodb.services.local.shared.jobs.JobsRegister;

import software.amazon.awssdk.services.dynamodb.DynamoDbClient;
import software.amazon.awssdk.services.dynamodb.streams.DynamoDbStreamsClient;

import com.almworks.sqlite4java.SQLiteConnection;
import com.almworks.sqlite4java.SQLiteException;
import com.almworks.sqlite4java.SQLiteJob;
import com.almworks.sqlite4java.SQLiteQueue;

public final class LoopbackDynamoDB {
    public static void main(String[] args) throws Exception {
        String host = System.getProperty("localdev.bindHost", "127.0.0.1");
        boolean selfTest = Boolean.getBoolean("localdev.selfTest");

        DynamoDBProxyServer proxy;
        try {
            proxy = ServerRunner.createServerFromCommandLineArgs(args);
        } catch (Exception e) {
            System.err.println("localdev: bad DynamoDB Local arguments: " + e);
            System.exit(2);
            return;
        }
        if (proxy == null) {  // -help, or arguments DynamoDB Local rejected (it printed why)
            System.exit(2);
            return;
        }

        String pragmas = System.getProperty("localdev.sqlitePragmas", "");
        tuneDatabases(proxy, pragmas.isEmpty() ? new String[0] : pragmas.split(";"),
                      Long.getLong("localdev.idleCloseSeconds", 0L));

        Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Server jetty = (Server) field.get(proxy);
        int bound = 0;
        for (Connector connector : jetty.getConnectors()) {
            if (connector instanceof AbstractNetworkConnector) {
                ((AbstractNetworkConnector) connector).setHost(host);
                if (selfTest) {
                    ((AbstractNetworkConnector) connector).setPort(0);
                }
                bound++;
            }
        }
        if (bound == 0) {
            // A DynamoDB Local whose server has no network connector we know: refuse rather than
            // fall back to listening on every interface.
            System.err.println("localdev: no network connector found in DynamoDB Local's Jetty server; not starting");
            System.exit(3);
        }

        // A failed bind either throws (Jetty's IOException) or, for a SocketException, is printed by
        // DynamoDBProxyServer.start(), which then returns normally: handle both.
        try {
            proxy.start();
        } catch (Exception e) {
            System.err.println("localdev: DynamoDB Local could not listen on " + host + ": " + e.getMessage());
            System.exit(3);
        }
        for (Connector connector : jetty.getConnectors()) {
            if (connector instanceof AbstractNetworkConnector
                    && (!((AbstractNetworkConnector) connector).isOpen() || !jetty.isStarted())) {
                System.err.println("localdev: DynamoDB Local could not listen on " + host + "; exiting");
                System.exit(3);
            }
        }
        int port = ((AbstractNetworkConnector) jetty.getConnectors()[0]).getLocalPort();
        System.err.println("localdev: DynamoDB Local listening on " + host + ":" + port);

        if (selfTest) {
            int status = listTables(host, port);
            proxy.stop();
            System.err.println("localdev: self-test ListTables answered HTTP " + status);
            System.exit(status == 200 ? 0 : 1);
        }

        String adminFile = System.getProperty("localdev.adminFile", "");
        HttpServer admin = adminFile.isEmpty() ? null : serveAdmin(proxy, Paths.get(adminFile));

        // SIGTERM: stop Jetty and close the SQLite databases before the JVM exits, so a stop is clean.
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                if (admin != null) {
                    admin.stop(0);
                    Files.deleteIfExists(Paths.get(adminFile));
                }
                proxy.stop();
            } catch (Exception e) {
                System.err.println("localdev: error while stopping DynamoDB Local: " + e);
            } finally {
                stopped.countDown();
            }
        }, "localdev-stop"));
        proxy.join();
        stopped.await();
    }

    // One unsigned-but-well-formed ListTables: DynamoDB Local reads the key from the Authorization
    // header and does not check the signature.
    private static int listTables(String host, int port) throws Exception {
        String h = host.contains(":") ? "[" + host + "]" : host;
        HttpURLConnection conn = (HttpURLConnection) new URL("http://" + h + ":" + port + "/").openConnection();
        conn.setRequestMethod("POST");
        conn.setDoOutput(true);
        conn.setConnectTimeout(5000);
        conn.setReadTimeout(10000);
        conn.setRequestProperty("Content-Type", "application/x-amz-json-1.0");
        conn.setRequestProperty("X-Amz-Target", "DynamoDB_20120810.ListTables");
        conn.setRequestProperty("X-Amz-Date", "20260101T000000Z");
        conn.setRequestProperty("Authorization", "AWS4-HMAC-SHA256 "
                + "Credential=localdevselftest/20260101/us-east-1/dynamodb/aws4_request, "
                + "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0");
        try (OutputStream out = conn.getOutputStream()) {
            out.write("{}".getBytes(StandardCharsets.UTF_8));
        }
        int status = conn.getResponseCode();
        try (InputStream in = status < 400 ? conn.getInputStream() : conn.getErrorStream()) {
            if (in != null) {
                in.readAllBytes();
            }
        }
        return status;
    }

    private static final Pattern KEY = Pattern.compile("[A-Za-z0-9]{1,64}");
    private static final Pattern REGION = Pattern.compile("[a-z0-9-]{1,32}");

    // Reaches DynamoDB Local's per-key databases through its private fields: DynamoDBProxyServer.serverHandler
    // -> AbstractLocalDynamoDBServerHandler.primaryHandler (a LocalDynamoDBRequestHandler) -> dbRequestHandlers,
    // a map "<key>_<region>" -> LocalDBClient filled by its synchronized getHandler(). Without them (another
    // DynamoDB Local version) the admin endpoint is not served and the service keeps its drop markers instead.
    private static HttpServer serveAdmin(DynamoDBProxyServer proxy, Path adminFile) {
        LocalDynamoDBRequestHandler requests;
        Map<String, AmazonDynamoDBLocal> databases;
        String dbDir;
        try {
            AbstractLocalDynamoDBServerHandler handler =
                    (AbstractLocalDynamoDBServerHandler) field(DynamoDBProxyServer.class, "serverHandler").get(proxy);
            Object primary = field(AbstractLocalDynamoDBServerHandler.class, "primaryHandler").get(handler);
            if (!(primary instanceof LocalDynamoDBRequestHandler)) {
                System.err.println("localdev: DynamoDB Local's request handler is a " + primary.getClass()
                        + ": databases cannot be released; not serving the admin endpoint");
                return null;
            }
            requests = (LocalDynamoDBRequestHandler) primary;
            @SuppressWarnings("unchecked")
            Map<String, AmazonDynamoDBLocal> map =
                    (Map<String, AmazonDynamoDBLocal>) field(LocalDynamoDBRequestHandler.class, "dbRequestHandlers").get(requests);
            databases = map;
            dbDir = (String) field(LocalDynamoDBRequestHandler.class, "dbFileLocation").get(requests);
            if (dbDir == null) {
                dbDir = ".";
            }
            byte[] raw = new byte[24];
            new SecureRandom().nextBytes(raw);
            String token = HexFormat.of().formatHex(raw);
            HttpServer server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 8);
            String dir = dbDir;
            server.createContext("/release", exchange -> release(exchange, token, requests, databases, dir));
            server.createContext("/replace", exchange -> release(exchange, token, requests, databases, dir));
            server.createContext("/pragma", exchange -> pragma(exchange, token, databases));
            server.start();
            Path tmp = adminFile.resolveSibling(adminFile.getFileName() + ".tmp");
            Files.deleteIfExists(tmp);
            Files.createFile(tmp, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
            Files.writeString(tmp, server.getAddress().getPort() + " " + token + "\n");
            Files.move(tmp, adminFile, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            return server;
        } catch (Exception e) {
            System.err.println("localdev: admin endpoint not served (databases will not be released): " + e);
            return null;
        }
    }

    // The per-key map (see serveAdmin) is replaced by one whose put() first runs the pragmas on the new
    // database's SQLite queue (SQLiteDBAccess.queue, made and started in its constructor, never replaced):
    // jobs run in order on the connection's one thread, so every request's job comes after them. put() is
    // called inside the synchronized getHandler(), before the database is handed to any request. It also
    // gives the database's clients the one shared error factory (shareErrors).
    private static void tuneDatabases(DynamoDBProxyServer proxy, String[] pragmas, long idleCloseSeconds)
            throws Exception {
        Object handler = field(DynamoDBProxyServer.class, "serverHandler").get(proxy);
        Object primary = field(AbstractLocalDynamoDBServerHandler.class, "primaryHandler").get(handler);
        if (!(primary instanceof LocalDynamoDBRequestHandler)) {
            System.err.println("localdev: DynamoDB Local's request handler is a " + primary.getClass()
                    + ": SQLite pragmas not set, idle databases not closed");
            return;
        }
        LocalDynamoDBRequestHandler requests = (LocalDynamoDBRequestHandler) primary;
        Field mapField = field(LocalDynamoDBRequestHandler.class, "dbRequestHandlers");
        // (in memory or shared, a database closed would lose its data or be every key's: never closed)
        boolean closable = idleCloseSeconds > 0 && !(Boolean) field(LocalDynamoDBRequestHandler.class, "runInMemory").get(requests)
                && !(Boolean) field(LocalDynamoDBRequestHandler.class, "sharedDb").get(requests);
        Opener opener = new Opener(requests, pragmas);
        @SuppressWarnings("unchecked")
        Map<String, AmazonDynamoDBLocal> before = (Map<String, AmazonDynamoDBLocal>) mapField.get(primary);
        Map<String, AmazonDynamoDBLocal> tuned = new HashMap<>() {
            @Override
            public AmazonDynamoDBLocal put(String key, AmazonDynamoDBLocal db) {
                if (!(db instanceof LocalDBClient)) {
                    return super.put(key, db);
                }
                opener.tune((LocalDBClient) db);
                return super.put(key, new Database(key, (LocalDBClient) db, opener, closable));
            }
        };
        tuned.putAll(before);
        mapField.set(primary, tuned);
        if (closable) {
            long idle = idleCloseSeconds * 1_000_000_000L;
            Thread closer = new Thread(() -> {
                while (true) {
                    try {
                        Thread.sleep(Math.max(1000L, idleCloseSeconds * 250L));
                        java.util.List<AmazonDynamoDBLocal> all;
                        synchronized (requests) {  // getHandler() changes the map holding this monitor
                            all = new java.util.ArrayList<>(tuned.values());
                        }
                        for (AmazonDynamoDBLocal db : all) {
                            if (db instanceof Database) {
                                ((Database) db).closeIfIdle(idle);
                            }
                        }
                    } catch (InterruptedException e) {
                        return;
                    } catch (RuntimeException e) {
                        System.err.println("localdev: closing idle databases: " + e);
                    }
                }
            }, "localdev-idle-closer");
            closer.setDaemon(true);
            closer.start();
        }
    }

    // Opens a key's database as DynamoDB Local's getHandler() does (its private static getDBAccess, a job
    // register with a pool of 10), and tunes each database it or DynamoDB Local opens.
    static final class Opener {
        private final java.lang.reflect.Method dbAccess;
        private final String dbDir;
        private final boolean delayTransient;
        private final String[] pragmas;

        Opener(LocalDynamoDBRequestHandler requests, String[] pragmas) throws ReflectiveOperationException {
            dbAccess = LocalDynamoDBRequestHandler.class.getDeclaredMethod("getDBAccess", String.class, String.class,
                                                                           boolean.class);
            dbAccess.setAccessible(true);
            dbDir = (String) field(LocalDynamoDBRequestHandler.class, "dbFileLocation").get(requests);
            delayTransient = (Boolean) field(LocalDynamoDBRequestHandler.class, "delayTransientStatuses").get(requests);
            this.pragmas = pragmas;
        }

        LocalDBClient open(String credentials) {
            try {
                LocalDBAccess access = (LocalDBAccess) dbAccess.invoke(null, credentials, dbDir, false);
                LocalDBClient db = new LocalDBClient(access, new JobsRegister(
                        java.util.concurrent.Executors.newFixedThreadPool(10), delayTransient));
                tune(db);
                return db;
            } catch (ReflectiveOperationException e) {
                throw new IllegalStateException("cannot open the database of " + credentials + ": " + e, e);
            }
        }

        // The pragmas first on the database's SQLite queue (SQLiteDBAccess.queue, made and started in its
        // constructor, never replaced: jobs run in order on the connection's one thread, so every request's
        // job comes after them), then the shared error factory.
        void tune(LocalDBClient db) {
            try {
                SQLiteQueue queue = queueOf(db);
                if (queue != null && pragmas.length > 0) {
                    queue.execute(new SQLiteJob<Void>() {
                        @Override
                        protected Void job(SQLiteConnection connection) throws SQLiteException {
                            for (String pragma : pragmas) {
                                connection.exec("PRAGMA " + pragma);
                            }
                            return null;
                        }
                    }).complete();
                }
            } catch (ReflectiveOperationException e) {
                throw new IllegalStateException("cannot set SQLite pragmas: " + e, e);
            }
            shareErrors(db);
        }
    }

    // What DynamoDB Local's per-key map holds instead of its LocalDBClient: the key's database, open or closed.
    // A request reaches the database through dynamoDbClient() (or the streams client), then calls one method
    // of that client; the clients handed out here count those calls, and the database is closed only when
    // none is running, no job of its own is (a GSI being built: only the three pollers), and none came for
    // the idle time. All under this object's monitor, so a call that comes while it closes waits, then opens
    // it again. release() (a deleted namespace) marks it released: a call that still comes fails.
    static final class Database implements AmazonDynamoDBLocal {
        private final String credentials;
        private final Opener opener;
        private final boolean closable;
        private LocalDBClient db;  // null while closed
        private int running;
        private long lastUsed = System.nanoTime();
        private boolean released;
        private boolean pinned;  // an async client was handed out: its calls cannot be counted
        private final DynamoDbClient client;
        private final DynamoDbStreamsClient streams;

        Database(String credentials, LocalDBClient db, Opener opener, boolean closable) {
            this.credentials = credentials;
            this.db = db;
            this.opener = opener;
            this.closable = closable;
            client = counted(DynamoDbClient.class, LocalDBClient::dynamoDbClient);
            streams = counted(DynamoDbStreamsClient.class, LocalDBClient::dynamoDbStreamsClient);
        }

        private <T> T counted(Class<T> api, java.util.function.Function<LocalDBClient, Object> of) {
            return api.cast(java.lang.reflect.Proxy.newProxyInstance(api.getClassLoader(), new Class<?>[] {api},
                    (proxy, method, args) -> {
                        if (method.getDeclaringClass() == Object.class) {
                            return method.invoke(this, args);
                        }
                        Object target;
                        synchronized (this) {
                            target = of.apply(open());
                            running++;
                        }
                        try {
                            return method.invoke(target, args);
                        } catch (java.lang.reflect.InvocationTargetException e) {
                            throw e.getCause();
                        } finally {
                            synchronized (this) {
                                running--;
                                lastUsed = System.nanoTime();
                            }
                        }
                    }));
        }

        // Holding this monitor.
        private LocalDBClient open() {
            if (released) {
                throw new IllegalStateException("the database of " + credentials + " was released (its namespace "
                        + "was deleted)");
            }
            if (db == null) {
                db = opener.open(credentials);
            }
            lastUsed = System.nanoTime();
            return db;
        }

        synchronized LocalDBClient openDatabase() {
            return open();
        }

        synchronized void closeIfIdle(long idleNanos) {
            if (!closable || db == null || pinned || running > 0 || System.nanoTime() - lastUsed < idleNanos
                    || !onlyPollers(db)) {
                return;
            }
            close();
        }

        // Closes it for good; whether it was open.
        synchronized boolean release() {
            released = true;
            return close();
        }

        // Closes it; the next call opens the key's file again (`/replace` swaps the file in between).
        synchronized boolean close() {
            boolean open = db != null;
            if (open) {
                db.shutdown();
                db = null;
            }
            return open;
        }

        private synchronized LocalDBClient pin() {
            pinned = true;
            return open();
        }

        @Override
        public DynamoDbClient dynamoDbClient() {
            return client;
        }

        @Override
        public DynamoDbStreamsClient dynamoDbStreamsClient() {
            return streams;
        }

        @Override
        public software.amazon.awssdk.services.dynamodb.DynamoDbAsyncClient dynamoDbAsyncClient() {
            return pin().dynamoDbAsyncClient();
        }

        @Override
        public software.amazon.awssdk.services.dynamodb.streams.DynamoDbStreamsAsyncClient dynamoDbStreamsAsyncClient() {
            return pin().dynamoDbStreamsAsyncClient();
        }

        @Override
        public void dilateEventTimes(long millis) {
            pin().dilateEventTimes(millis);
        }

        @Override
        public void triggerShardRollovers() {
            pin().triggerShardRollovers();
        }

        @Override
        public void shutdown() {
            release();
        }

        @Override
        public synchronized java.util.List<Runnable> shutdownNow() {
            released = true;
            java.util.List<Runnable> left = db != null ? db.shutdownNow() : java.util.List.of();
            db = null;
            return left;
        }
    }

    // True if the database's job register runs only its three polling schedulers (named *-SCHEDULER); false
    // while it builds or deletes an index or expires items, or if the register cannot be read.
    private static boolean onlyPollers(LocalDBClient db) {
        try {
            Object jobs = field(LocalDBClient.class, "jobs").get(db);
            Map<?, ?> running = (Map<?, ?>) field(JobsRegister.class, "jobs").get(jobs);
            for (Object name : running.keySet()) {
                if (!String.valueOf(name).endsWith("-SCHEDULER")) {
                    return false;
                }
            }
            return true;
        } catch (ReflectiveOperationException | RuntimeException e) {
            return false;
        }
    }

    // Each database's two clients (LocalDynamoDbClient, LocalDynamoDbStreamsClient) build their own
    // AWSExceptionFactory, which makes its ~130 error codes' exceptions in advance: each keeps the backtrace of
    // its construction (setStackTrace only hides it), ~0.2 MB of heap per factory, so 500 namespaces filled the
    // default heap and DynamoDB Local spent its time collecting. A factory holds nothing of its database (final
    // error codes, fixed messages; a message with details makes a new exception), so one serves every database
    // and each database's own is garbage at once. Another DynamoDB Local version without these fields keeps its
    // own factories: said once on stderr, nothing else changes.
    private static final AWSExceptionFactory SHARED_ERRORS = new AWSExceptionFactory();
    private static volatile boolean errorsNotShared;

    private static void shareErrors(AmazonDynamoDBLocal db) {
        if (errorsNotShared || !(db instanceof LocalDBClient)) {
            return;
        }
        try {
            for (String name : new String[] {"dynamoDbClient", "dynamoDbStreamsClient"}) {
                Object client = field(LocalDBClient.class, name).get(db);
                Object own = field(client.getClass(), "awsExceptionFactory").get(client);
                replace(client, own, SHARED_ERRORS, 2);  // the client's converters were given it too
            }
        } catch (ReflectiveOperationException | RuntimeException e) {
            errorsNotShared = true;
            System.err.println("localdev: each database keeps its own error factory (" + e + ")");
        }
    }

    // Points every field of `holder` that holds `old` at `with`, and so on in the DynamoDB Local objects it
    // holds, `depth` levels down.
    private static void replace(Object holder, Object old, Object with, int depth) throws ReflectiveOperationException {
        for (Class<?> c = holder.getClass(); c != null && c.getName().startsWith(DYNAMODB_LOCAL); c = c.getSuperclass()) {
            for (Field f : c.getDeclaredFields()) {
                if (java.lang.reflect.Modifier.isStatic(f.getModifiers()) || f.getType().isPrimitive()) {
                    continue;
                }
                f.setAccessible(true);
                Object value = f.get(holder);
                if (value == old) {
                    f.set(holder, with);
                } else if (depth > 1 && value != null && value.getClass().getName().startsWith(DYNAMODB_LOCAL)) {
                    replace(value, old, with, depth - 1);
                }
            }
        }
    }

    private static final String DYNAMODB_LOCAL = "software.amazon.dynamodb.";

    // The SQLite queue (one connection, one thread) of a database DynamoDB Local opened; null for another kind.
    private static SQLiteQueue queueOf(AmazonDynamoDBLocal db) throws ReflectiveOperationException {
        if (db instanceof Database) {
            db = ((Database) db).openDatabase();
        }
        Object dbAccess = db instanceof LocalDBClient ? field(LocalDBClient.class, "dbAccess").get(db) : null;
        return dbAccess instanceof SQLiteDBAccess
                ? (SQLiteQueue) field(SQLiteDBAccess.class, "queue").get(dbAccess) : null;
    }

    private static Field field(Class<?> cls, String name) throws NoSuchFieldException {
        Field f = cls.getDeclaredField(name);
        f.setAccessible(true);
        return f;
    }

    private static void release(HttpExchange exchange, String token, LocalDynamoDBRequestHandler requests,
                                Map<String, AmazonDynamoDBLocal> databases, String dbDir) throws java.io.IOException {
        try {
            Map<String, String> query = authorizedQuery(exchange, token);
            if (query == null) {
                return;
            }
            String key = query.get("key");
            String region = query.get("region");
            Path replacement = null;
            if (exchange.getRequestURI().getPath().equals("/replace")) {
                replacement = Paths.get(query.getOrDefault("from", ""));
                if (!replacement.isAbsolute() || !Files.isRegularFile(replacement)) {
                    reply(exchange, 400, "{\"error\": \"from must name an existing file by its absolute path\"}");
                    return;
                }
            }
            boolean open;
            boolean deleted;
            // getHandler() is synchronized on the request handler: holding its monitor, no request can reopen
            // this database between its removal from the map, its close and the deletion of its file. A
            // request already past getHandler() with this key (a deleted namespace's) fails. A replaced
            // database stays in the map, closed while its monitor is held: a call that comes meanwhile waits,
            // then opens the new file.
            String credentials = key + "_" + region;  // getCredentialsString(); the file is getDBAccess()'s
            synchronized (requests) {
                AmazonDynamoDBLocal db = databases.get(credentials);
                Database kept = replacement != null && db instanceof Database ? (Database) db : null;
                if (kept == null) {
                    databases.remove(credentials);
                }
                synchronized (kept != null ? kept : requests) {
                    if (kept != null) {
                        open = kept.close();
                    } else if (db instanceof Database) {
                        open = ((Database) db).release();
                    } else {
                        open = db != null;
                        if (open) {
                            db.shutdown();
                        }
                    }
                    File file = new File(dbDir, credentials + ".db");
                    deleted = Files.deleteIfExists(file.toPath());
                    for (String suffix : new String[] {"-journal", "-wal", "-shm"}) {
                        Files.deleteIfExists(Paths.get(file.getPath() + suffix));
                    }
                    if (replacement != null) {  // a whole file or none: copied aside, then renamed over
                        Path tmp = Paths.get(file.getPath() + ".localdev-tmp");
                        Files.copy(replacement, tmp, StandardCopyOption.REPLACE_EXISTING);
                        Files.move(tmp, file.toPath(), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
                    }
                }
            }
            reply(exchange, 200, "{\"was_open\": " + open + ", \"deleted\": " + deleted + "}");
        } catch (RuntimeException e) {
            reply(exchange, 500, "{\"error\": \"" + e.toString().replace("\\", "/").replace("\"", "'") + "\"}");
        } finally {
            exchange.close();
        }
    }

    // The request's query if it is a POST with our token and a valid key and region; else null, answered.
    private static Map<String, String> authorizedQuery(HttpExchange exchange, String token) throws java.io.IOException {
        String given = exchange.getRequestHeaders().getFirst("X-Localdev-Token");
        if (given == null || !MessageDigest.isEqual(given.getBytes(StandardCharsets.UTF_8),
                                                    token.getBytes(StandardCharsets.UTF_8))) {
            reply(exchange, 403, "{\"error\": \"bad token\"}");
            return null;
        }
        if (!"POST".equals(exchange.getRequestMethod())) {
            reply(exchange, 405, "{\"error\": \"POST only\"}");
            return null;
        }
        Map<String, String> query = new HashMap<>();
        String raw = exchange.getRequestURI().getRawQuery();
        for (String pair : raw == null ? new String[0] : raw.split("&")) {
            int eq = pair.indexOf('=');
            if (eq > 0) {
                query.put(pair.substring(0, eq), URLDecoder.decode(pair.substring(eq + 1), StandardCharsets.UTF_8));
            }
        }
        query.putIfAbsent("key", "");
        query.putIfAbsent("region", "");
        if (!KEY.matcher(query.get("key")).matches() || !REGION.matcher(query.get("region")).matches()) {
            reply(exchange, 400, "{\"error\": \"key must match [A-Za-z0-9]{1,64} and region [a-z0-9-]{1,32}\"}");
            return null;
        }
        return query;
    }

    // POST /pragma?key=K&region=R&name=N: the value of PRAGMA N (a word) on that key's open database, read on
    // its own connection, so a test can see what tuneDatabases set; 404 when the database is not open.
    private static void pragma(HttpExchange exchange, String token, Map<String, AmazonDynamoDBLocal> databases)
            throws java.io.IOException {
        try {
            Map<String, String> query = authorizedQuery(exchange, token);
            if (query == null) {
                return;
            }
            String name = query.getOrDefault("name", "");
            if (!name.matches("[a-z_]{1,40}")) {
                reply(exchange, 400, "{\"error\": \"name must be a pragma's name\"}");
                return;
            }
            SQLiteQueue queue = queueOf(databases.get(query.get("key") + "_" + query.get("region")));
            if (queue == null) {
                reply(exchange, 404, "{\"error\": \"no open database for that key and region\"}");
                return;
            }
            String value = queue.execute(new SQLiteJob<String>() {
                @Override
                protected String job(SQLiteConnection connection) throws SQLiteException {
                    com.almworks.sqlite4java.SQLiteStatement st = connection.prepare("PRAGMA " + name);
                    try {
                        return st.step() ? st.columnString(0) : "";
                    } finally {
                        st.dispose();
                    }
                }
            }).complete();
            reply(exchange, 200, "{\"value\": \"" + value + "\"}");
        } catch (ReflectiveOperationException | RuntimeException e) {
            reply(exchange, 500, "{\"error\": \"" + e.toString().replace("\\", "/").replace("\"", "'") + "\"}");
        } finally {
            exchange.close();
        }
    }

    private static void reply(HttpExchange exchange, int status, String body) throws java.io.IOException {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().set("Content-Type", "application/json");
        exchange.sendResponseHeaders(status, bytes.length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(bytes);
        }
    }
}
