// A JDBC client of aurum-api's Flight SQL endpoint, through Apache Arrow's Flight SQL
// JDBC driver (the driver DBeaver uses). api/tests/flight_jdbc.sh runs it with
// `java -cp DRIVER.jar FlightSqlJdbcProbe.java` and compares its output with
// PostgreSQL.
//
// Env: JDBC_URL, JDBC_USER, JDBC_PASSWORD, ROWS_OUT (a file for the rows it reads).
// Prints one "ok ..." or "FAIL ..." line per check; exits 1 if any failed.

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Types;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Properties;

public class FlightSqlJdbcProbe {
    private static int failures = 0;

    private static void check(boolean ok, String what) {
        System.out.println((ok ? "ok   " : "FAIL ") + what);
        if (!ok) {
            failures++;
        }
    }

    private static Properties credentials(String password) {
        Properties p = new Properties();
        p.setProperty("user", System.getenv("JDBC_USER"));
        p.setProperty("password", password);
        return p;
    }

    public static void main(String[] args) throws Exception {
        String url = System.getenv("JDBC_URL");
        String password = System.getenv("JDBC_PASSWORD");
        try (Connection c = DriverManager.getConnection(url, credentials(password))) {
            DatabaseMetaData md = c.getMetaData();

            // What DBeaver's navigator shows: the tables, their columns and keys.
            List<String> tables = new ArrayList<>();
            try (ResultSet rs = md.getTables(null, null, "%", null)) {
                while (rs.next()) {
                    tables.add(rs.getString("TABLE_NAME"));
                }
            }
            Collections.sort(tables);
            check(tables.equals(List.of("gold_customer_lifetime_value", "gold_monthly_sales",
                    "gold_sales_country_year", "gold_top_products")),
                    "getTables lists the four gold tables to a viewer: " + tables);

            int decimalType = 0;
            try (ResultSet rs = md.getColumns(null, "public", "gold_customer_lifetime_value", "lifetime_value")) {
                if (rs.next()) {
                    decimalType = rs.getInt("DATA_TYPE");
                }
            }
            check(decimalType == Types.DECIMAL, "getColumns: lifetime_value is DECIMAL (" + decimalType + ")");

            List<String> key = new ArrayList<>();
            try (ResultSet rs = md.getPrimaryKeys(null, "public", "gold_top_products")) {
                while (rs.next()) {
                    key.add(rs.getShort("KEY_SEQ") + ":" + rs.getString("COLUMN_NAME"));
                }
            }
            Collections.sort(key);
            check(key.equals(List.of("1:scope", "2:rank")), "getPrimaryKeys of gold_top_products: " + key);

            try (ResultSet rs = md.getImportedKeys(null, "public", "gold_top_products")) {
                check(!rs.next(), "getImportedKeys: no foreign keys");
            }

            // The whole datamart, as the SQL editor reads it.
            int rows = 0;
            String country = null;
            try (Statement s = c.createStatement();
                    ResultSet rs = s.executeQuery(
                            "SELECT customer_no, country, first_purchase, transactions, lifetime_value "
                                    + "FROM gold_customer_lifetime_value ORDER BY customer_no");
                    PrintWriter out = new PrintWriter(Files.newBufferedWriter(Path.of(System.getenv("ROWS_OUT"))))) {
                while (rs.next()) {
                    out.println(String.join("\t", rs.getString(1), rs.getString(2),
                            rs.getDate(3).toLocalDate().toString(), Long.toString(rs.getLong(4)),
                            rs.getBigDecimal(5).toPlainString()));
                    if (country == null) {
                        country = rs.getString(2);
                    }
                    rows++;
                }
            }
            check(rows > 50, "SELECT reads " + rows + " customers");

            // A prepared statement with a bound parameter.
            try (PreparedStatement ps = c.prepareStatement(
                    "SELECT count(*) AS n FROM gold_customer_lifetime_value WHERE country = ?")) {
                ps.setString(1, country);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    System.out.println("count\t" + country + "\t" + rs.getLong(1));
                }
            }

            // Rejections reach the client with their message.
            try (Statement s = c.createStatement()) {
                s.executeQuery("DELETE FROM gold_monthly_sales");
                check(false, "DELETE is refused");
            } catch (SQLException e) {
                check(String.valueOf(e.getMessage()).contains("read-only SELECT"),
                        "DELETE is refused: " + e.getMessage().lines().findFirst().orElse(""));
            }
        }
        try (Connection c = DriverManager.getConnection(url, credentials(password + "x"))) {
            check(false, "a wrong password is refused");
        } catch (SQLException e) {
            check(true, "a wrong password is refused");
        }
        System.exit(failures == 0 ? 0 : 1);
    }
}
