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
// Exit codes: 0 after a clean stop (SIGTERM), 2 on bad arguments, 3 if the listener could not be
// bound to the requested host, 1 on any other start failure.

import java.io.InputStream;
import java.io.OutputStream;
import java.lang.reflect.Field;
import java.net.HttpURLConnection;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.CountDownLatch;

import org.eclipse.jetty.server.AbstractNetworkConnector;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;

import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

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

        // SIGTERM: stop Jetty and close the SQLite databases before the JVM exits, so a stop is clean.
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
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
}
