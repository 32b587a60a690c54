// The corpus app for sentry-java: each bug raised a few times, in the build named by the first argument.
// Build "b" moves the code (the recorder pads the file) and adds code that renumbers lambdas,
// anonymous classes and proxy classes. Labels travel in the tag "bug"; the recorder moves them out.
package com.example.shop;

import io.sentry.Sentry;
import java.lang.reflect.InvocationHandler;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

public class Shop {
    interface Payments { int charge(String order, int cents); }

    static class Orders {
        /*EXTRA_LAMBDA*/
        int total(List<Integer> prices) {
            return prices.stream().map(p -> p == 0 ? null : p).mapToInt(p -> p.intValue()).sum();
        }
        Runnable shipper(String order) {
            /*EXTRA_ANON*/
            return new Runnable() {
                public void run() { throw new IllegalStateException("no carrier for order " + order); }
            };
        }
        public String lookup(String sku) {
            Map<String, String> stock = Map.of("a-1", "x");
            return stock.get(sku).trim();
        }
    }

    static int depthA(int n) { return depthB(n + 1) + 1; }
    static int depthB(int n) { return depthA(n + 1) + 1; }

    static void capture(Throwable t, String bug) {
        Sentry.captureException(t, scope -> scope.setTag("bug", bug));
    }

    public static void main(String[] args) throws Exception {
        String build = args[0];
        Sentry.init(o -> {
            o.setDsn(System.getenv("SENTRY_DSN"));
            o.setRelease("shop-java@" + (build.equals("a") ? "1.4.0" : "1.5.0"));
            o.setServerName("shop-java-" + build);
            o.addInAppInclude("com.example.shop");
            o.setAttachServerName(true);
        });
        Orders orders = new Orders();
        /*EXTRA_PROXY*/
        for (int n = 0; n < 3; n++) {
            final int i = n;
            try { orders.total(List.of(100 + i, 0, 250)); } catch (Throwable t) { capture(t, "java-npe-in-stream-lambda"); }
            try { orders.shipper("o-" + (4000 + i * 17)).run(); } catch (Throwable t) { capture(t, "java-anonymous-runnable"); }
            try { orders.lookup("sku-" + i); } catch (Throwable t) { capture(t, "java-npe-lookup"); }
            Payments real = (order, cents) -> { throw new ArithmeticException("charge of " + cents + " cents overflows for " + order); };
            Payments proxy = (Payments) Proxy.newProxyInstance(Shop.class.getClassLoader(), new Class<?>[]{Payments.class},
                (InvocationHandler) (p, m, a) -> m.invoke(real, a));
            try { proxy.charge("o-" + i, 2_000_000_000 + i); } catch (Throwable t) { capture(t, "java-proxy-reflection-charge"); }
            try {
                Method m = Orders.class.getMethod("lookup", String.class);
                m.invoke(orders, "missing-" + i);
            } catch (Throwable t) { capture(t, "java-reflective-lookup"); }
            try { depthA(i * 7); } catch (StackOverflowError t) { capture(t, "java-stack-overflow"); }
            try { Integer.parseInt("12x" + i); } catch (Throwable t) { capture(t, "java-parse-int"); }
            try { java.util.UUID.fromString("not-a-uuid-" + i); } catch (Throwable t) { capture(t, "java-parse-uuid"); }
            Sentry.withScope(scope -> {
                scope.setTag("bug", "java-message-gateway-timeout");
                Sentry.captureMessage("payment gateway [2001:db8::" + (i + 1) + "]:8443 timed out after " + (1500 + i * 37) + " ms");
            });
        }
        Sentry.flush(10000);
        Sentry.close();
    }
}
