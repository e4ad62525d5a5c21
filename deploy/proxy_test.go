package deploy

import (
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/payflow/payflow/api"
)

// publicRoutes are the only requests the public proxy hands to the api:
// WeChat Pay's notifications and a health path for a load balancer.
var publicRoutes = map[string]string{ // location → the one method it admits
	"= /wechatpay/notify":    "POST",
	"= /wechatpay/v3/notify": "POST",
	"= /healthz":             "GET",
}

// The proxy has exactly the public locations and a catch-all 404: no order
// path, nor anything else, is routed to the api.
func TestNginxRoutesOnlyNotifications(t *testing.T) {
	c := loadNginx(t)
	locs := c.locations()
	var got []string
	for k := range locs {
		got = append(got, k)
	}
	want := []string{"/"}
	for k := range publicRoutes {
		want = append(want, k)
	}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("locations %q, want exactly %q", got, want)
	}
	for loc, method := range publicRoutes {
		l := locs[loc]
		if pp := all(l.block, "proxy_pass"); len(pp) != 1 || strings.Join(pp[0].args, " ") != "http://api" {
			t.Errorf("location %s: proxy_pass %v, want http://api (the path passed as it is)", loc, pp)
		}
		if m := methodOnly(l); m != method {
			t.Errorf("location %s admits %q, want only %s (others 405)", loc, m, method)
		}
	}
	catchAll := locs["/"]
	if r := all(catchAll.block, "return"); len(r) != 1 || strings.Join(r[0].args, " ") != "404" || len(catchAll.block) != 1 {
		t.Errorf("location / must only return 404, has %d directives", len(catchAll.block))
	}
	// Nothing else can reach the api: no proxy_pass outside those
	// locations, no regex location, rewrite, internal redirect or files.
	forbidden := []string{"rewrite", "try_files", "error_page", "root", "alias", "fastcgi_pass", "uwsgi_pass", "grpc_pass", "scgi_pass", "return 30"}
	walk(c.http.block, nil, func(d *directive, parents []*directive) {
		if d.name == "proxy_pass" {
			if len(parents) != 2 || parents[1].name != "location" || publicRoutes[strings.Join(parents[1].args, " ")] == "" {
				t.Errorf("line %d: proxy_pass outside the public locations", d.line)
			}
		}
		if d.name == "location" && len(d.args) > 1 && d.args[0] != "=" {
			t.Errorf("line %d: location %v: only exact locations and the 404 catch-all", d.line, d.args)
		}
		line := d.name + " " + strings.Join(d.args, " ")
		for _, f := range forbidden {
			if strings.HasPrefix(line, f) {
				t.Errorf("line %d: %q has no place on the public face", d.line, line)
			}
		}
		if regexp.MustCompile(`(?i)orders|reconciliation|readyz|metrics`).MatchString(line) {
			t.Errorf("line %d: %q names a path that must not be public", d.line, line)
		}
	})
	if len(all(c.http.block, "server")) != 1 {
		t.Error("want one server block")
	}
}

// What a request meets at the proxy, as nginx matches the locations
// above: exact locations first, else the catch-all (case-sensitive).
func TestNginxRouteTable(t *testing.T) {
	c := loadNginx(t)
	locs := c.locations()
	route := func(method, path string) string {
		l, ok := locs["= "+path]
		if !ok {
			return "404"
		}
		if m := methodOnly(l); m != "" && m != method {
			return "405"
		}
		return "api"
	}
	for _, tt := range []struct{ method, path, want string }{
		{"POST", "/wechatpay/notify", "api"},
		{"POST", "/wechatpay/v3/notify", "api"},
		{"GET", "/healthz", "api"},
		{"GET", "/wechatpay/notify", "405"},
		{"PUT", "/wechatpay/v3/notify", "405"},
		{"POST", "/healthz", "405"},
		{"POST", "/orders", "404"},
		{"GET", "/orders/ORDER123", "404"},
		{"POST", "/orders/ORDER123/close", "404"},
		{"POST", "/orders/ORDER123/sync", "404"},
		{"POST", "/orders/ORDER123/refunds", "404"},
		{"POST", "/reconciliations/2026-11-25", "404"},
		{"GET", "/readyz", "404"},
		{"GET", "/metrics", "404"},
		{"GET", "/", "404"},
		{"POST", "/wechatpay/notify/", "404"},
		{"POST", "/WECHATPAY/NOTIFY", "404"},
		{"POST", "/wechatpay/notifyx", "404"},
	} {
		if got := route(tt.method, tt.path); got != tt.want {
			t.Errorf("%s %s → %s, want %s", tt.method, tt.path, got, tt.want)
		}
	}
}

// TLS terminates at the proxy: the published listener is the TLS one,
// with certificate paths from TLS_CERT_FILE and TLS_KEY_FILE in TLS_DIR.
func TestProxyTLS(t *testing.T) {
	c := loadNginx(t)
	var listens []string
	for _, l := range all(c.server.block, "listen") {
		listens = append(listens, strings.Join(l.args, " "))
	}
	sort.Strings(listens)
	if !slices.Equal(listens, []string{"8080", "8443 ssl"}) {
		t.Errorf("listen %q, want 8443 ssl (published) and 8080 (inside the networks only)", listens)
	}
	if inc := all(c.server.block, "include"); len(inc) != 1 || inc[0].args[0] != "/etc/nginx/conf.d/tls.conf" {
		t.Errorf("the server does not include the rendered tls.conf: %v", inc)
	}
	if p := c.setting(c.server, "ssl_protocols"); !slices.Equal(p, []string{"TLSv1.2", "TLSv1.3"}) {
		t.Errorf("ssl_protocols %v, want TLSv1.2 TLSv1.3", p)
	}
	tmpl, err := os.ReadFile("nginx/templates/tls.conf.template")
	if err != nil {
		t.Fatal(err)
	}
	ds, err := parseNginx(string(tmpl))
	if err != nil {
		t.Fatal(err)
	}
	if a := one(t, ds, "ssl_certificate").args; len(a) != 1 || a[0] != "${TLS_CERT_FILE}" {
		t.Errorf("ssl_certificate %v", a)
	}
	if a := one(t, ds, "ssl_certificate_key").args; len(a) != 1 || a[0] != "${TLS_KEY_FILE}" {
		t.Errorf("ssl_certificate_key %v", a)
	}
	if len(ds) != 2 {
		t.Errorf("tls.conf.template has %d directives, want the two paths", len(ds))
	}

	p := mustLoad(t)
	proxy := service(t, p, "proxy")
	env := envOf(proxy)
	if env["TLS_CERT_FILE"] != "/etc/nginx/tls/fullchain.pem" || env["TLS_KEY_FILE"] != "/etc/nginx/tls/privkey.pem" {
		t.Errorf("TLS_CERT_FILE=%q TLS_KEY_FILE=%q, want the defaults in /etc/nginx/tls", env["TLS_CERT_FILE"], env["TLS_KEY_FILE"])
	}
	mounts := map[string]types.ServiceVolumeConfig{}
	for _, v := range proxy.Volumes {
		mounts[v.Target] = v
	}
	for target, src := range map[string]string{
		"/etc/nginx/nginx.conf": "deploy/nginx/nginx.conf",
		"/etc/nginx/templates":  "deploy/nginx/templates",
		"/etc/nginx/tls":        "deploy/tls",
	} {
		v, ok := mounts[target]
		if !ok || !strings.HasSuffix(v.Source, src) || !v.ReadOnly {
			t.Errorf("proxy: %s is not mounted read-only from %s: %+v", target, src, v)
		}
	}
	// Operators point them elsewhere, certbot's directory for one.
	e := testEnv()
	e["TLS_DIR"], e["TLS_CERT_FILE"], e["TLS_KEY_FILE"] = "/etc/letsencrypt", "/etc/nginx/tls/live/pay.example.com/fullchain.pem", "/etc/nginx/tls/live/pay.example.com/privkey.pem"
	p2, err := loadCompose(t, e)
	if err != nil {
		t.Fatal(err)
	}
	proxy2 := service(t, p2, "proxy")
	if env := envOf(proxy2); env["TLS_CERT_FILE"] != e["TLS_CERT_FILE"] || env["TLS_KEY_FILE"] != e["TLS_KEY_FILE"] {
		t.Errorf("overrides not applied: %v", env)
	}
	if !slices.ContainsFunc(proxy2.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Source == "/etc/letsencrypt" && v.Target == "/etc/nginx/tls" && v.ReadOnly
	}) {
		t.Errorf("TLS_DIR not mounted at /etc/nginx/tls: %+v", proxy2.Volumes)
	}
	if _, err := os.Stat("tls/README.md"); err != nil {
		t.Errorf("deploy/tls is not documented: %v", err)
	}
}

// The order API is reachable only on the internal network: the api
// publishes nothing and is not on the public network; the proxy is the one
// service on it and the one port published beyond loopback.
func TestComposeOrderAPIInternalOnly(t *testing.T) {
	p := mustLoad(t, "dev", "observability")
	for name, s := range p.Services {
		var nets []string
		for n := range s.Networks {
			nets = append(nets, n)
		}
		sort.Strings(nets)
		want := []string{"internal"}
		if name == "proxy" {
			want = []string{"internal", "public"}
		}
		if !slices.Equal(nets, want) {
			t.Errorf("%s: networks %v, want %v", name, nets, want)
		}
		for _, port := range s.Ports {
			if name == "proxy" {
				continue
			}
			if port.HostIP != "127.0.0.1" {
				t.Errorf("%s: publishes %s:%s beyond loopback", name, port.HostIP, port.Published)
			}
		}
	}
	api := service(t, p, "api")
	if len(api.Ports) != 0 || len(api.Expose) != 0 {
		t.Errorf("api publishes %v / exposes %v: the order API must stay on the internal network", api.Ports, api.Expose)
	}
	for _, n := range []string{"public", "internal"} {
		if _, ok := p.Networks[n]; !ok {
			t.Errorf("no network %q", n)
		}
	}
	proxy := service(t, p, "proxy")
	for _, port := range proxy.Ports {
		if port.Target != 8443 {
			t.Errorf("proxy publishes %d: only the TLS listener 8443 faces the world", port.Target)
		}
	}
	// The api listens on every interface of its container, so it needs
	// tokens; compose refuses to start without API_TOKENS.
	if env := envOf(api); env["API_ADDR"] != "0.0.0.0:8080" || env["API_TOKENS"] == "" {
		t.Errorf("api: API_ADDR=%q API_TOKENS set=%v", env["API_ADDR"], env["API_TOKENS"] != "")
	}
}

// The proxy waits for the api longer than the api can take: the api's
// update wait < its request deadline < its server's WriteTimeout < nginx's
// proxy_read_timeout, for every location routed to the api. So a client
// never gets a proxy 504 for something the api did.
func TestTimeoutsFitTogether(t *testing.T) {
	if !(api.UpdateTimeout < api.RequestTimeout && api.RequestTimeout < api.WriteTimeout) {
		t.Fatalf("api: UpdateTimeout %s, RequestTimeout %s, WriteTimeout %s: want increasing", api.UpdateTimeout, api.RequestTimeout, api.WriteTimeout)
	}
	c := loadNginx(t)
	for loc := range publicRoutes {
		l := c.locations()[loc]
		read, err := nginxDuration(strings.Join(c.setting(l, "proxy_read_timeout"), ""))
		if err != nil {
			t.Fatalf("%s: proxy_read_timeout: %v", loc, err)
		}
		if read <= api.WriteTimeout {
			t.Errorf("%s: proxy_read_timeout %s, want more than the api's WriteTimeout %s", loc, read, api.WriteTimeout)
		}
		for _, name := range []string{"proxy_connect_timeout", "proxy_send_timeout"} {
			d, err := nginxDuration(strings.Join(c.setting(l, name), ""))
			if err != nil || d <= 0 || d > read {
				t.Errorf("%s: %s %v (%v), want set and at most proxy_read_timeout", loc, name, d, err)
			}
		}
	}
}
