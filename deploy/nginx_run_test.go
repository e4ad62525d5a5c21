package deploy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// nginxBinary finds nginx, installing Debian's package the way `make test`
// does (scripts/ensure-deps.sh --with-nginx) when it is missing. Only when
// it cannot be had, outside CI, is the test skipped.
func nginxBinary(t *testing.T) string {
	t.Helper()
	find := func() string {
		if p, err := exec.LookPath("nginx"); err == nil {
			return p
		}
		if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
			return "/usr/sbin/nginx"
		}
		return ""
	}
	if p := find(); p != "" {
		return p
	}
	out, err := exec.Command("../scripts/ensure-deps.sh", "--with-nginx").CombinedOutput()
	if p := find(); p != "" {
		return p
	}
	msg := fmt.Sprintf("nginx is not installed and scripts/ensure-deps.sh --with-nginx could not install it (%v): %s", err, out)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// selfSigned writes a throwaway certificate for localhost/127.0.0.1 and
// its key into dir, and returns the pool that trusts it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// replaceOnce replaces old by new in s, failing the test unless old occurs
// exactly once (so a change of nginx.conf cannot silently skip a step).
func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if n := strings.Count(s, old); n != 1 {
		t.Fatalf("nginx.conf: %q occurs %d times, want once (update this test with the file)", old, n)
	}
	return strings.Replace(s, old, new, 1)
}

// upstream stands in for the api replicas: it records what reached it.
type upstream struct {
	mu   sync.Mutex
	seen []string // "METHOD /path auth=<Authorization>"
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.seen = append(u.seen, r.Method+" "+r.URL.RequestURI()+" auth="+r.Header.Get("Authorization"))
	u.mu.Unlock()
	_, _ = io.WriteString(w, "from the api")
}

func (u *upstream) take() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := u.seen
	u.seen = nil
	return s
}

// TestNginxServesOnlyNotifications runs the real nginx on
// deploy/nginx/nginx.conf, changed only where this machine is not the
// container: the upstream (Docker's "api" name does not resolve here, and
// "resolve" needs nginx 1.27.3 while Debian has 1.22) becomes a stand-in
// api on loopback, the listeners move to loopback ports, and the pid,
// temporary and certificate paths into a temporary directory with a
// throwaway certificate. Then, over TLS and over the plain in-network
// listener: the notifications and GET /healthz reach the api; every order
// path, /readyz and /metrics is 404 and never reaches it; wrong methods
// are 405; plain HTTP on the TLS port and TLS 1.1 are refused.
func TestNginxServesOnlyNotifications(t *testing.T) {
	bin := nginxBinary(t)
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)

	up := &upstream{}
	apiSrv := httptest.NewServer(up)
	defer apiSrv.Close()
	tlsAddr, plainAddr := "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t)

	src, err := os.ReadFile("nginx/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(src)
	conf = replaceOnce(t, conf, "server api:8080 resolve max_fails=0;", "server "+strings.TrimPrefix(apiSrv.URL, "http://")+" max_fails=0;")
	conf = replaceOnce(t, conf, "listen 8443 ssl;", "listen "+tlsAddr+" ssl;")
	conf = replaceOnce(t, conf, "listen 8080;", "listen "+plainAddr+";")
	conf = replaceOnce(t, conf, "include /etc/nginx/conf.d/tls.conf;", "include "+filepath.Join(dir, "tls.conf")+";")
	conf = replaceOnce(t, conf, "pid /tmp/nginx.pid;", "pid "+filepath.Join(dir, "nginx.pid")+";")
	for _, p := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		conf = replaceOnce(t, conf, " /tmp/"+p+";", " "+filepath.Join(dir, p)+";")
	}
	// The nginx image renders the template with envsubst; so does this.
	tmpl, err := os.ReadFile("nginx/templates/tls.conf.template")
	if err != nil {
		t.Fatal(err)
	}
	tlsConf := os.Expand(string(tmpl), func(name string) string {
		return map[string]string{"TLS_CERT_FILE": certFile, "TLS_KEY_FILE": keyFile}[name]
	})
	confFile := filepath.Join(dir, "nginx.conf")
	for name, body := range map[string]string{confFile: conf, filepath.Join(dir, "tls.conf"): tlsConf} {
		if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	args := []string{"-e", "stderr", "-p", dir + "/", "-c", confFile}
	if out, err := exec.Command(bin, append([]string{"-t"}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	logs := &syncWriter{}
	ngx := exec.Command(bin, append(args, "-g", "daemon off;")...)
	ngx.Stdout, ngx.Stderr = logs, logs
	ngx.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := ngx.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = ngx.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = ngx.Process.Signal(syscall.SIGQUIT)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-ngx.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	waitListening(t, tlsAddr, done)
	waitListening(t, plainAddr, done)

	httpsClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}}}
	for _, base := range []struct {
		url    string
		client *http.Client
	}{{"https://" + tlsAddr, httpsClient}, {"http://" + plainAddr, &http.Client{Timeout: 10 * time.Second}}} {
		for _, tt := range []struct {
			method, path string
			want         int
			reaches      bool
		}{
			{"POST", "/wechatpay/notify", 200, true},
			{"POST", "/wechatpay/v3/notify", 200, true},
			{"GET", "/healthz", 200, true},
			{"GET", "/wechatpay/notify", 405, false},
			{"PUT", "/wechatpay/v3/notify", 405, false},
			{"POST", "/healthz", 405, false},
			{"POST", "/orders", 404, false},
			{"GET", "/orders/ORDER123", 404, false},
			{"POST", "/orders/ORDER123/close", 404, false},
			{"POST", "/orders/ORDER123/sync", 404, false},
			{"POST", "/orders/ORDER123/refunds", 404, false},
			{"POST", "/reconciliations/2026-11-25", 404, false},
			{"GET", "/readyz", 404, false},
			{"GET", "/metrics", 404, false},
			{"GET", "/", 404, false},
			{"POST", "/wechatpay/notify/", 404, false},
			{"POST", "/wechatpay/notify/../../orders", 404, false},
			{"POST", "/wechatpay/notify/%2e%2e/%2e%2e/orders", 404, false},
			{"POST", "//orders", 404, false},
			{"POST", "/WECHATPAY/NOTIFY", 404, false},
		} {
			req, err := http.NewRequest(tt.method, base.url+"/", strings.NewReader(`<xml></xml>`))
			if err != nil {
				t.Fatal(err)
			}
			req.URL.Opaque = tt.path // sent exactly as written, no client-side cleaning
			req.Header.Set("Authorization", "Bearer client-credential-0123456789")
			resp, err := base.client.Do(req)
			if err != nil {
				t.Fatalf("%s %s%s: %v", tt.method, base.url, tt.path, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			seen := up.take()
			if resp.StatusCode != tt.want || (len(seen) == 1) != tt.reaches || len(seen) > 1 {
				t.Errorf("%s %s%s: %d %q, api saw %q; want %d, reaching the api: %v",
					tt.method, base.url, tt.path, resp.StatusCode, body, seen, tt.want, tt.reaches)
				continue
			}
			if tt.reaches && seen[0] != tt.method+" "+tt.path+" auth=" {
				t.Errorf("the api got %q, want %s %s without the client's Authorization", seen[0], tt.method, tt.path)
			}
			if strings.Contains(resp.Header.Get("Server"), "1.") {
				t.Errorf("the proxy tells its version: %q", resp.Header.Get("Server"))
			}
		}
	}

	// Plain HTTP on the TLS port, and TLS older than 1.2: refused.
	resp, err := http.Post("http://"+tlsAddr+"/wechatpay/notify", "text/xml", strings.NewReader("<xml></xml>"))
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP on the TLS port: %d, want 400", resp.StatusCode)
		}
	}
	old := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}}}
	if resp, err := old.Post("https://"+tlsAddr+"/wechatpay/notify", "text/xml", strings.NewReader("<xml></xml>")); err == nil {
		resp.Body.Close()
		t.Errorf("a TLS 1.1 client got through: %d", resp.StatusCode)
	}
	if seen := up.take(); len(seen) != 0 {
		t.Errorf("refused requests reached the api: %q", seen)
	}
	if strings.Contains(logs.String(), "client-credential") {
		t.Errorf("nginx logged the client's Authorization:\n%s", logs.String())
	}
}

// syncWriter collects nginx's stdout and stderr, safe to read meanwhile.
type syncWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitListening waits until addr accepts connections, or nginx exited.
func waitListening(t *testing.T, addr string, exited <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			t.Fatal("nginx exited")
		case <-ctx.Done():
			t.Fatalf("nginx is not listening on %s", addr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
