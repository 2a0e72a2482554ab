/*
 * A real Neo4j Community server for kgqa development and tests, without Docker.
 *
 * Runs Neo4j's embedded DatabaseManagementService with the Bolt connector on 127.0.0.1 and
 * authentication enabled. Started by start.sh with Java's single-file source launcher:
 *
 *   java <jvm flags> -cp 'services/neo4j/lib/*' services/neo4j/Launcher.java [--data DIR] [--port N]
 *
 * Settings (argument beats environment beats default):
 *   --data DIR  / NEO4J_DATA          database files and Neo4j's own logs   (default services/neo4j/data)
 *   --port N    / NEO4J_PORT          Bolt port on 127.0.0.1                (default 7687)
 *                 NEO4J_PASSWORD      password of user "neo4j", set on every start
 *                                     (default kgqa-test-password; at least 8 characters)
 *                 NEO4J_PAGECACHE_MB  page cache size in MiB                (default 256)
 *
 * Prints "READY bolt://127.0.0.1:PORT" once the default database answers queries and the
 * password is set; shuts the databases down cleanly on SIGTERM / SIGINT (shutdown hook).
 */

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.neo4j.configuration.GraphDatabaseInternalSettings;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;
import org.neo4j.io.ByteUnit;
import org.neo4j.logging.Level;
import org.neo4j.logging.log4j.Log4jLogProvider;

public class Launcher {
    static final String HOST = "127.0.0.1";
    static final String USER = "neo4j";

    static final String SET_PASSWORD =
            "ALTER USER neo4j SET PASSWORD $password CHANGE NOT REQUIRED";
    static final String CLEAR_CHANGE_REQUIRED =
            "ALTER USER neo4j SET PASSWORD CHANGE NOT REQUIRED";

    public static void main(String[] args) throws Exception {
        String data = env("NEO4J_DATA", "services/neo4j/data");
        String port = env("NEO4J_PORT", "7687");
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--data": data = args[++i]; break;
                case "--port": port = args[++i]; break;
                default:
                    die("unknown argument '" + args[i] + "' (expected --data DIR, --port N)");
            }
        }
        String password = env("NEO4J_PASSWORD", "kgqa-test-password");
        if (password.length() < 8) {
            die("NEO4J_PASSWORD must be at least 8 characters (Neo4j's minimum password length)");
        }
        int boltPort = parsePort(port);
        long pageCacheMb = Long.parseLong(env("NEO4J_PAGECACHE_MB", "256"));

        Path dataDir = Path.of(data).toAbsolutePath().normalize();
        Files.createDirectories(dataDir);

        System.out.println("Starting Neo4j " + neo4jVersion() + " (embedded, community) data=" + dataDir
                + " bolt=" + HOST + ":" + boltPort);

        DatabaseManagementService dbms;
        try {
            dbms = new DatabaseManagementServiceBuilder(dataDir)
                    .setUserLogProvider(new Log4jLogProvider(System.out, Level.INFO))
                    .setConfig(GraphDatabaseSettings.data_directory, dataDir)
                    .setConfig(GraphDatabaseSettings.logs_directory, dataDir.resolve("logs"))
                    .setConfig(GraphDatabaseSettings.default_listen_address, new SocketAddress(HOST))
                    .setConfig(BoltConnector.enabled, true)
                    .setConfig(BoltConnector.listen_address, new SocketAddress(HOST, boltPort))
                    .setConfig(BoltConnector.encryption_level, BoltConnector.EncryptionLevel.DISABLED)
                    .setConfig(GraphDatabaseSettings.auth_enabled, true)
                    .setConfig(GraphDatabaseSettings.udc_enabled, false) // no usage reports from tests
                    .setConfig(GraphDatabaseSettings.pagecache_memory, ByteUnit.mebiBytes(pageCacheMb))
                    // Small, non-preallocated transaction logs: this is a dev/test server, not production.
                    .setConfig(GraphDatabaseSettings.preallocate_logical_logs, false)
                    .setConfig(GraphDatabaseSettings.logical_log_rotation_threshold, ByteUnit.mebiBytes(64))
                    // Bolt's Netty event loops otherwise wait a 5 s "quiet period" each (10 s per stop).
                    .setConfig(GraphDatabaseInternalSettings.netty_server_shutdown_quiet_period, 0)
                    .build();
        } catch (Throwable e) {
            die("Neo4j failed to start on " + HOST + ":" + boltPort + ": " + rootMessage(e)
                    + " (is the port already in use, or is another instance using " + dataDir + "?)", e);
            return;
        }

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("Stopping Neo4j ...");
            try {
                dbms.shutdown();
                System.out.println("STOPPED");
            } catch (Throwable e) {
                System.out.println("Error while stopping Neo4j: " + rootMessage(e));
            } finally {
                System.out.flush();
                stopped.countDown();
            }
        }, "neo4j-shutdown"));

        try {
            GraphDatabaseService db = dbms.database(GraphDatabaseSettings.DEFAULT_DATABASE_NAME);
            if (!db.isAvailable(Duration.ofMinutes(2).toMillis())) {
                die("the default database '" + db.databaseName() + "' did not become available within 2 minutes");
            }
            setPassword(dbms.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME), password);
            db.executeTransactionally("RETURN 1");
        } catch (Throwable e) {
            die("Neo4j started but is not usable: " + rootMessage(e), e);
        }

        System.out.println("READY bolt://" + HOST + ":" + boltPort);
        System.out.flush();
        stopped.await();
    }

    /** Sets the password of user neo4j and clears the "change required" flag. Idempotent. */
    static void setPassword(GraphDatabaseService system, String password) {
        try {
            system.executeTransactionally(SET_PASSWORD, Map.of("password", password));
        } catch (RuntimeException e) {
            // Neo4j refuses to "change" a password to the one it already has; that is fine here.
            if (!chainContains(e, "Old password and new password cannot be the same")) {
                throw e;
            }
            system.executeTransactionally(CLEAR_CHANGE_REQUIRED);
        }
    }

    static String neo4jVersion() {
        String v = DatabaseManagementService.class.getPackage().getImplementationVersion();
        return v != null ? v : "(unknown version)";
    }

    static int parsePort(String s) {
        try {
            int p = Integer.parseInt(s.trim());
            if (p < 1 || p > 65535) throw new NumberFormatException();
            return p;
        } catch (NumberFormatException e) {
            die("invalid Bolt port '" + s + "' (expected 1-65535)");
            return -1;
        }
    }

    static String env(String name, String fallback) {
        String v = System.getenv(name);
        return v == null || v.isEmpty() ? fallback : v;
    }

    static String rootMessage(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null && t.getCause() != t) t = t.getCause();
        String m = t.getMessage();
        return t.getClass().getSimpleName() + (m == null ? "" : ": " + m);
    }

    static boolean chainContains(Throwable e, String text) {
        for (Throwable t = e; t != null; t = t.getCause() == t ? null : t.getCause()) {
            if (t.getMessage() != null && t.getMessage().contains(text)) return true;
        }
        return false;
    }

    /** Prints one clear line and exits 1 (running the shutdown hook, if the server was built). */
    static void die(String message) {
        System.err.println("ERROR: " + message);
        System.err.flush();
        System.exit(1);
    }

    static void die(String message, Throwable e) {
        e.printStackTrace();
        die(message);
    }
}
