# ops/varnish/frontier.vcl: the edge cache in front of the asset origin (`frontier run
# asset-origin`). ops/stack runs it with Debian 12's Varnish 7.1 and varnish-modules 0.20
# (vmod xkey); docker-compose.yml with the official varnish image.
#
# This file is a contract: src/cdn/provider/varnish.rs (the CDN purger), the asset origin and
# the tests rely on exactly what follows. Change them together. ops/varnish/check exercises it.
#
#   GET/HEAD      cached by URL + Host (the built-in hash), one variant per normalized
#                 Accept-Encoding (the origin sends `Vary: Accept-Encoding`): br, zstd, gzip or
#                 none. TTL and grace come from the origin's Cache-Control (s-maxage, else
#                 max-age; stale-while-revalidate is the grace); keep 1 h for conditional
#                 revalidation (ETag). A 5xx is never cached; a background refresh that gets
#                 one is dropped, so the stale object keeps being served within its grace.
#                 Response headers: X-Cache: HIT|MISS (HIT = obj.hits > 0, stale grace hits
#                 included), X-Cache-Hits: <obj.hits>. xkey, Surrogate-Key, x-url and x-host
#                 are removed unless the request has `X-Frontier-Debug: 1`. ETag,
#                 Content-Encoding, Vary and Cache-Control pass as the origin sent them
#                 (varnishd runs with http_gzip_support=off: it never gunzips or gzips).
#   GET/HEAD + X-Frontier-Refresh: 1  (from a purger address) a synchronous refetch
#                 (req.hash_always_miss): the new object goes ahead of the cached variant and is
#                 what every later request gets. The old object is never served again but stays
#                 in memory until it expires or is purged, so it counts in a later X-Purged
#                 (e.g. 2 for one URL refreshed once). Ignored from other addresses.
#   PURGE + xkey-purge: <keys>        (purgers only; keys space-separated) xkey.purge
#   PURGE + xkey-softpurge: <keys>    xkey.softpurge: ttl 0, grace and keep kept, so the next
#                 request gets the stale object at once while a background fetch replaces it
#                 (both headers: both, and the counts add up)
#   PURGE <url>   without those headers: every Vary variant of that URL (at the request's
#                 Host): purge.hard(), or purge.soft(0s) with `X-Purge-Soft: 1`
#       -> 200, `X-Purged: <objects hit>`, `Content-Type: application/json`, body
#          {"purged": <objects hit>}  (0 is still a 200)
#   BAN + X-Ban-Url: <regex>   (purgers only) std.ban("obj.http.x-url ~ " + regex): every
#                 object whose URL (path and query, as fetched) matches, on any Host; only
#                 obj.* is tested, so the ban lurker evaluates it in the background
#       -> 200 {"banned": true}; 400 {"error": "..."} without X-Ban-Url or for an invalid
#          expression (e.g. a bad regex)
#   PURGE/BAN from any other address -> 405 {"error": "..."}; any other method -> 405.
#
# Backend: 127.0.0.1:8088 (the same in docker-compose.yml, where varnish shares the
# asset-origin container's network namespace), probed with GET /healthz every 1 s (healthy
# with 2 good of the last 3). A literal IP, so varnishd starts (and the VCL loads) whether or
# not the origin is up; while it is sick, misses answer 503 at once, and cached objects are
# still served within their grace. After the origin starts, the first good probes mark it
# healthy within about 2 s (`varnishadm -n .stack/varnish backend.list`).
vcl 4.1;

import std;
import purge;
import xkey;

probe origin_healthz {
    .url = "/healthz";
    .interval = 1s;
    .timeout = 1s;
    .window = 3;
    .threshold = 2;
}

backend origin {
    .host = "127.0.0.1";
    .port = "8088";
    .probe = origin_healthz;
    .connect_timeout = 1s;
    .first_byte_timeout = 30s;
    .between_bytes_timeout = 10s;
}

acl purgers {
    "127.0.0.1";
    "::1";
}

sub vcl_recv {
    # Internal carrier of the purge count: never taken from a client.
    unset req.http.x-frontier-purged;
    unset req.http.x-frontier-error;
    # From the built-in VCL: lower-case Host, 400 for an HTTP/1.1 request without one.
    call vcl_req_host;

    # One token, so `Vary: Accept-Encoding` makes at most 4 variants per URL. The origin's
    # preference: br, then zstd, then gzip; a token with q=0 does not count.
    if (req.http.Accept-Encoding) {
        if (req.http.Accept-Encoding ~ "(?i)(^|,)\s*br\s*(;\s*q\s*=\s*(1(\.0*)?|0?\.[0-9]*[1-9][0-9]*)\s*)?(,|$)") {
            set req.http.Accept-Encoding = "br";
        } elsif (req.http.Accept-Encoding ~ "(?i)(^|,)\s*zstd\s*(;\s*q\s*=\s*(1(\.0*)?|0?\.[0-9]*[1-9][0-9]*)\s*)?(,|$)") {
            set req.http.Accept-Encoding = "zstd";
        } elsif (req.http.Accept-Encoding ~ "(?i)(^|,)\s*gzip\s*(;\s*q\s*=\s*(1(\.0*)?|0?\.[0-9]*[1-9][0-9]*)\s*)?(,|$)") {
            set req.http.Accept-Encoding = "gzip";
        } else {
            unset req.http.Accept-Encoding;
        }
    }

    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            set req.http.x-frontier-error = "PURGE is not allowed from " + client.ip;
            return (synth(405, "Method Not Allowed"));
        }
        if (req.http.xkey-purge && req.http.xkey-softpurge) {
            set req.http.x-frontier-purged = xkey.purge(req.http.xkey-purge)
                + xkey.softpurge(req.http.xkey-softpurge);
            return (synth(200, "Purged"));
        } elsif (req.http.xkey-purge) {
            set req.http.x-frontier-purged = xkey.purge(req.http.xkey-purge);
            return (synth(200, "Purged"));
        } elsif (req.http.xkey-softpurge) {
            set req.http.x-frontier-purged = xkey.softpurge(req.http.xkey-softpurge);
            return (synth(200, "Purged"));
        }
        # A URL purge: look the URL up (all its variants share one hash), purge in
        # vcl_hit or vcl_miss.
        return (hash);
    }

    if (req.method == "BAN") {
        if (client.ip !~ purgers) {
            set req.http.x-frontier-error = "BAN is not allowed from " + client.ip;
            return (synth(405, "Method Not Allowed"));
        }
        if (!req.http.X-Ban-Url) {
            set req.http.x-frontier-error = "BAN needs an X-Ban-Url header (a regex on the URL)";
            return (synth(400, "Bad Request"));
        }
        if (std.ban("obj.http.x-url ~ " + req.http.X-Ban-Url)) {
            return (synth(200, "Banned"));
        }
        set req.http.x-frontier-error = "invalid ban: " + std.ban_error();
        return (synth(400, "Bad Request"));
    }

    if (req.method != "GET" && req.method != "HEAD") {
        return (synth(405, "Method Not Allowed"));
    }

    if (req.http.X-Frontier-Refresh) {
        if (req.http.X-Frontier-Refresh == "1" && client.ip ~ purgers) {
            # Fetch now and replace the cached variant (used after a soft purge).
            set req.hash_always_miss = true;
        }
        unset req.http.X-Frontier-Refresh;
    }

    # Static assets: cookies are the site's, not the origin's business.
    unset req.http.Cookie;
    if (req.http.Authorization) {
        return (pass);
    }
    # (the built-in vcl_hash follows: URL + Host)
    return (hash);
}

sub frontier_purge_url {
    if (req.http.X-Purge-Soft == "1") {
        set req.http.x-frontier-purged = purge.soft(0s);
    } else {
        set req.http.x-frontier-purged = purge.hard();
    }
    return (synth(200, "Purged"));
}

sub vcl_hit {
    if (req.method == "PURGE") {
        call frontier_purge_url;
    }
}

sub vcl_miss {
    if (req.method == "PURGE") {
        call frontier_purge_url;
    }
}

sub vcl_pass {
    # Never reached for PURGE (this VCL makes no hit-for-pass objects); never forward one.
    if (req.method == "PURGE") {
        set req.http.x-frontier-purged = "0";
        return (synth(200, "Purged"));
    }
}

sub vcl_backend_response {
    # For bans (lurker-friendly: obj.* only) and for debugging; removed in vcl_deliver.
    set beresp.http.x-url = bereq.url;
    set beresp.http.x-host = bereq.http.host;

    if (beresp.status >= 500) {
        if (bereq.is_bgfetch) {
            # Keep the stale object: it is served for the rest of its grace.
            return (abandon);
        }
        # Not cached (a short hit-for-miss so concurrent requests do not queue behind it).
        set beresp.ttl = 1s;
        set beresp.grace = 0s;
        set beresp.uncacheable = true;
        return (deliver);
    }
    # TTL (s-maxage, else max-age) and grace (stale-while-revalidate) are already set from
    # the origin's Cache-Control. Keep the object 1 h longer for conditional refetches.
    set beresp.keep = 1h;
    # The built-in rules follow: Set-Cookie, private/no-store, Vary: * -> not cached.
}

sub vcl_backend_error {
    if (bereq.is_bgfetch) {
        # Origin unreachable during a background refresh: keep serving the stale object.
        return (abandon);
    }
}

sub vcl_deliver {
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
    set resp.http.X-Cache-Hits = obj.hits;
    if (req.http.X-Frontier-Debug != "1") {
        unset resp.http.xkey;
        unset resp.http.Surrogate-Key;
        unset resp.http.x-url;
        unset resp.http.x-host;
    }
}

sub vcl_synth {
    if (req.method == "PURGE" || req.method == "BAN") {
        set resp.http.Content-Type = "application/json";
        unset resp.http.Retry-After;
        if (resp.status == 200 && req.method == "PURGE") {
            set resp.http.X-Purged = req.http.x-frontier-purged;
            set resp.body = {"{"purged": "} + req.http.x-frontier-purged + "}";
        } elsif (resp.status == 200) {
            set resp.body = {"{"banned": true}"};
        } else {
            set resp.body = {"{"error": ""} + regsuball(req.http.x-frontier-error, {"["\\]"}, "'") + {"""} + "}";
        }
        return (deliver);
    }
}
