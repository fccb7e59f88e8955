package gauth_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/cxlab/cxlab/mocks/gauth"
	"github.com/cxlab/cxlab/mocks/tenant"
)

// envData returns the envelope's status code and data of a response body.
func envData(t *testing.T, body []byte) (float64, any) {
	t.Helper()
	m := decode(t, body)
	st, _ := m["status"].(map[string]any)
	code, _ := st["code"].(float64)
	return code, m["data"]
}

// environmentBody is Genesys' own provisioning script's body (B.7, A12).
func environmentBody(id, password string) string {
	return `{"data":{"username":"default","password":"` + password + `","id":"` + id + `","connectionProtocol":"addp",
		"localTimeout":60,"remoteTimeout":90,"tenant":"Environment","appName":"Cloud","traceMode":"CFGTMBoth","tlsEnabled":false,
		"configServers":[{"primaryPort":8888,"readOnly":false,"primaryAddress":"tenant-` + id + `-cfgmaster.service.dc1.consul","locations":"/USW1"}]}}`
}

// A provisioning script creates an environment, reads it back (never its
// password), lists it, hits 409 on a re-run, names it in a new contact center
// and deletes it.
func TestEnvironments(t *testing.T) {
	e := newEnv(t)
	const password = "cfg-Pa55word-never-served"
	id := uuid.NewString()
	post := func(body string) (int, []byte) {
		t.Helper()
		code, _, b := e.do(http.MethodPost, "/environment/v3/environments", opsAuth, strings.NewReader(body))
		return code, b
	}

	code, hdr, body := e.do(http.MethodPost, "/environment/v3/environments", opsAuth, strings.NewReader(environmentBody(id, password)))
	if code != 201 || strings.Contains(string(body), password) || strings.Contains(string(body), `"password"`) {
		t.Fatalf("create: %d %s", code, body)
	}
	m := decode(t, body)
	if st, _ := m["status"].(map[string]any); st["code"] != float64(0) {
		t.Fatalf("create status: %s", body)
	}
	// The script reads the id as `jq .path | cut -d'/' -f3`.
	path, _ := m["path"].(string)
	if parts := strings.Split(path, "/"); len(parts) != 3 || parts[2] != id || hdr.Get("Location") != "/environment/v3/environments/"+id {
		t.Fatalf("path %q, Location %q, want the id %s", path, hdr.Get("Location"), id)
	}

	code, _, body = e.do(http.MethodGet, "/environment/v3/environments/"+id, opsAuth, nil)
	st, data := envData(t, body)
	env, _ := data.(map[string]any)
	if code != 200 || st != 0 || env["id"] != id || env["username"] != "default" || env["traceMode"] != "CFGTMBoth" || env["localTimeout"] != float64(60) {
		t.Fatalf("get: %d %s", code, body)
	}
	if _, has := env["password"]; has || strings.Contains(string(body), password) {
		t.Fatalf("get returns the password: %s", body)
	}
	cs, _ := env["configServers"].([]any)
	if len(cs) != 1 || cs[0].(map[string]any)["primaryPort"] != float64(8888) || cs[0].(map[string]any)["locations"] != "/USW1" {
		t.Fatalf("configServers: %s", body)
	}

	code, _, body = e.do(http.MethodGet, "/environment/v3/environments", opsAuth, nil)
	_, data = envData(t, body)
	ids := map[any]bool{}
	list, _ := data.([]any)
	for _, x := range list {
		ids[x.(map[string]any)["id"]] = true
	}
	if code != 200 || !ids[id] || !ids["cxlab-env"] || strings.Contains(string(body), password) {
		t.Fatalf("list: %d %s", code, body)
	}

	// Stored hashed: the password is in no column.
	var row string
	if err := e.pool.QueryRow(context.Background(), `SELECT row_to_json(e)::text FROM gauth.environments e WHERE id = $1`, id).Scan(&row); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(row, password) {
		t.Fatalf("password stored in clear: %s", row)
	}

	if code, body := post(environmentBody(id, "other")); code != 409 || !strings.Contains(string(body), `"code":409`) {
		t.Fatalf("duplicate: %d %s", code, body)
	}
	// Without an id: a new UUID.
	code, body = post(`{"data":{"username":"u","password":"p","configServers":[{"primaryAddress":"cfg","primaryPort":8888}]}}`)
	gen, _ := decode(t, body)["path"].(string)
	if _, err := uuid.Parse(strings.TrimPrefix(gen, "/environments/")); code != 201 || err != nil {
		t.Fatalf("create without id: %d %s", code, body)
	}
	if _, data := envData(t, body); data.(map[string]any)["remoteTimeout"] != float64(90) || data.(map[string]any)["appName"] != "Cloud" {
		t.Fatalf("defaults: %s", body)
	}

	// Contact centers must name a stored environment.
	cc := uuid.NewString()
	code, _, body = e.do(http.MethodPost, "/environment/v3/contact-centers", opsAuth,
		strings.NewReader(`{"data":{"domains":["t104"],"environmentId":"`+id+`","auth":"configServer","id":"`+cc+`"}}`))
	if code != 201 || !strings.Contains(string(body), `"environmentId":"`+id+`"`) {
		t.Fatalf("contact center in the new environment: %d %s", code, body)
	}
	code, _, body = e.do(http.MethodPost, "/environment/v3/contact-centers", opsAuth,
		strings.NewReader(`{"data":{"domains":["t105"],"environmentId":"no-such-env"}}`))
	if code != 400 || !strings.Contains(string(body), "environmentId") {
		t.Fatalf("contact center in an unknown environment: %d %s", code, body)
	}

	// Survives a restart.
	e.start()
	if code, _, _ := e.do(http.MethodGet, "/environment/v3/environments/"+id, opsAuth, nil); code != 200 {
		t.Fatalf("after restart: %d", code)
	}

	if code, _, body := e.do(http.MethodDelete, "/environment/v3/environments/"+id, opsAuth, nil); code != 409 || !strings.Contains(string(body), "t104") {
		t.Fatalf("delete an environment in use: %d %s", code, body)
	}
	if err := e.store.DeleteContactCenter(context.Background(), tenant.CCID(cc)); err != nil {
		t.Fatal(err)
	}
	if code, _, body := e.do(http.MethodDelete, "/environment/v3/environments/"+id, opsAuth, nil); code != 200 {
		t.Fatalf("delete: %d %s", code, body)
	}
	if code, _, body := e.do(http.MethodGet, "/environment/v3/environments/"+id, opsAuth, nil); code != 404 || !strings.Contains(string(body), `"code":404`) {
		t.Fatalf("get after delete: %d %s", code, body)
	}
	if code, _, _ := e.do(http.MethodDelete, "/environment/v3/environments/"+id, opsAuth, nil); code != 404 {
		t.Fatalf("delete again: %d", code)
	}

	// Ops only: environments belong to the deployment, not a tenant.
	ges := e.serviceToken("ges_client", "ges-secret")
	for _, r := range []struct{ method, path string }{
		{http.MethodGet, "/environment/v3/environments"},
		{http.MethodGet, "/environment/v3/environments/cxlab-env"},
		{http.MethodPost, "/environment/v3/environments"},
		{http.MethodDelete, "/environment/v3/environments/cxlab-env"},
	} {
		if code, _, _ := e.do(r.method, r.path, nil, strings.NewReader(environmentBody(uuid.NewString(), "x"))); code != 401 {
			t.Errorf("%s %s without credentials: %d", r.method, r.path, code)
		}
		if code, _, _ := e.do(r.method, r.path, map[string]string{"Authorization": "Bearer " + ges}, strings.NewReader(environmentBody(uuid.NewString(), "x"))); code != 401 {
			t.Errorf("%s %s with a service token: %d", r.method, r.path, code)
		}
	}
}

// A missing or ill-typed required field is a 400 in the envelope naming it.
func TestEnvironmentValidation(t *testing.T) {
	e := newEnv(t)
	cs := `"configServers":[{"primaryAddress":"cfg","primaryPort":8888}]`
	for _, c := range []struct{ body, field string }{
		{`{"data":{"password":"p",` + cs + `}}`, "username"},
		{`{"data":{"username":"","password":"p",` + cs + `}}`, "username"},
		{`{"data":{"username":"u",` + cs + `}}`, "password"},
		{`{"data":{"username":"u","password":"p"}}`, "configServers"},
		{`{"data":{"username":"u","password":"p","configServers":[]}}`, "configServers"},
		{`{"data":{"username":"u","password":"p","configServers":[{"primaryPort":8888}]}}`, "configServers[0].primaryAddress"},
		{`{"data":{"username":"u","password":"p","configServers":[{"primaryAddress":"cfg"}]}}`, "configServers[0].primaryPort"},
		{`{"data":{"username":"u","password":"p","configServers":[{"primaryAddress":"cfg","primaryPort":"8888"}]}}`, "configServers.primaryPort"},
		{`{"data":{"username":"u","password":"p","configServers":[{"primaryAddress":"cfg","primaryPort":70000}]}}`, "configServers[0].primaryPort"},
		{`{"data":{"username":"u","password":"p","configServers":{"primaryAddress":"cfg"}}}`, "configServers"},
		{`{"data":{"username":42,"password":"p",` + cs + `}}`, "username"},
		{`{"data":{"username":"u","password":"p","localTimeout":"60",` + cs + `}}`, "localTimeout"},
		{`{"data":{"username":"u","password":"p","remoteTimeout":-1,` + cs + `}}`, "remoteTimeout"},
		{`{"data":{"username":"u","password":"p","tlsEnabled":"maybe",` + cs + `}}`, "tlsEnabled"},
		{`{"data":{"username":"u","password":"p","traceMode":"loud",` + cs + `}}`, "traceMode"},
		{`{"data":{"id":"a/b","username":"u","password":"p",` + cs + `}}`, "id"},
		{`{"data":{"username":"u\u0000","password":"p",` + cs + `}}`, "username"},
	} {
		code, _, body := e.do(http.MethodPost, "/environment/v3/environments", opsAuth, strings.NewReader(c.body))
		st, _ := envData(t, body)
		msg, _ := decode(t, body)["status"].(map[string]any)["message"].(string)
		if code != 400 || st != 400 || !strings.HasPrefix(msg, c.field+" ") {
			t.Errorf("%s: %d %s, want 400 naming %s", c.body, code, body, c.field)
		}
	}
	// A string "true" is a boolean, as Genesys' scripts send it.
	if code, _, body := e.do(http.MethodPost, "/environment/v3/environments", opsAuth,
		strings.NewReader(`{"data":{"username":"u","password":"p","tlsEnabled":"true",`+cs+`}}`)); code != 201 || !strings.Contains(string(body), `"tlsEnabled":true`) {
		t.Errorf("tlsEnabled \"true\": %d %s", code, body)
	}
}

// The password reaches neither a response nor the log.
func TestEnvironmentPasswordNotLogged(t *testing.T) {
	e := newEnv(t)
	var logs bytes.Buffer
	srv, err := gauth.New(gauth.Config{PublicURL: func() string { return e.base }}, e.store, e.pool,
		slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), nil, e.clk)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	ec := echo.New()
	srv.Mount(ec)
	const password = "log-me-not-8d1c"
	for _, body := range []string{environmentBody("logged-env", password), environmentBody("logged-env", password),
		`{"data":{"username":"u","password":"` + password + `","configServers":[{"primaryAddress":"cfg","primaryPort":"x"}]}}`} {
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/environment/v3/environments", strings.NewReader(body))
		for k, v := range opsAuth {
			req.Header.Set(k, v)
		}
		res := httptest.NewRecorder()
		ec.ServeHTTP(res, req)
		if strings.Contains(res.Body.String(), password) {
			t.Errorf("%d response holds the password: %s", res.Code, res.Body)
		}
	}
	if !strings.Contains(logs.String(), "environment created") || strings.Contains(logs.String(), password) {
		t.Fatalf("log:\n%s", logs.String())
	}
}

// A provisioning script sets the demo contact center's CORS origins, as
// Genesys' helpers.sh does, then changes them.
func TestContactCenterSettings(t *testing.T) {
	e := newEnv(t)
	path := "/environment/v3/contact-centers/" + demoCCID + "/settings"
	post := func(hdr map[string]string, p, body string) (int, []byte) {
		t.Helper()
		code, _, b := e.do(http.MethodPost, p, hdr, strings.NewReader(body))
		return code, b
	}
	settings := func(token string) []any {
		t.Helper()
		code, _, body := e.do(http.MethodGet, path, map[string]string{"Authorization": token}, nil)
		st, data := envData(t, body)
		list, isList := data.([]any)
		if code != 200 || st != 0 || !isList {
			t.Fatalf("list: %d %s", code, body)
		}
		return list
	}
	ops := opsAuth["Authorization"]
	if got := settings(ops); len(got) != 0 {
		t.Fatalf("settings before any: %v", got)
	}

	cors := `{"data":{"location":"/USW1","name":"cors-origins","shared":"true","value":"https://gws.lab.local, https://wwe.lab.local"}}`
	if code, body := post(opsAuth, path, cors); code != 201 || !strings.Contains(string(body), `"code":0`) {
		t.Fatalf("create: %d %s", code, body)
	}
	got := settings(ops)
	if len(got) != 1 {
		t.Fatalf("settings: %v", got)
	}
	if s := got[0].(map[string]any); s["name"] != "cors-origins" || s["value"] != "https://gws.lab.local, https://wwe.lab.local" || s["shared"] != true || s["location"] != "/USW1" {
		t.Fatalf("setting: %v", s)
	}

	// Posting the same name replaces it.
	if code, body := post(opsAuth, path, `{"data":{"location":"/USW1","name":"cors-origins","shared":false,"value":"https://console.lab.local"}}`); code != 200 {
		t.Fatalf("replace: %d %s", code, body)
	}
	got = settings(ops)
	if s := got[0].(map[string]any); len(got) != 1 || s["value"] != "https://console.lab.local" || s["shared"] != false {
		t.Fatalf("after replace: %v", got)
	}
	code, _, body := e.do(http.MethodGet, path+"/cors-origins", opsAuth, nil)
	if _, data := envData(t, body); code != 200 || data.(map[string]any)["value"] != "https://console.lab.local" {
		t.Fatalf("get one: %d %s", code, body)
	}

	// Unknown contact centers, bad bodies, no credentials.
	for _, p := range []string{"/environment/v3/contact-centers/" + uuid.NewString() + "/settings", "/environment/v3/contact-centers/not-a-ccid/settings"} {
		if code, _, body := e.do(http.MethodGet, p, opsAuth, nil); code != 404 || !strings.Contains(string(body), `"code":404`) {
			t.Errorf("GET %s: %d %s", p, code, body)
		}
		if code, body := post(opsAuth, p, cors); code != 404 {
			t.Errorf("POST %s: %d %s", p, code, body)
		}
	}
	for _, c := range []struct{ body, field string }{
		{`{"data":{"location":"/USW1","value":"x"}}`, "name"},
		{`{"data":{"name":"","value":"x"}}`, "name"},
		{`{"data":{"name":"a b","value":"x"}}`, "name"},
		{`{"data":{"name":"n"}}`, "value"},
		{`{"data":{"name":"n","value":"x","shared":"yes"}}`, "shared"},
	} {
		if code, body := post(opsAuth, path, c.body); code != 400 || !strings.Contains(string(body), c.field) {
			t.Errorf("%s: %d %s, want 400 naming %s", c.body, code, body, c.field)
		}
	}
	if code, _, _ := e.do(http.MethodGet, path, nil, nil); code != 401 {
		t.Errorf("list without credentials: %d", code)
	}
	if code, _ := post(map[string]string{"Content-Type": "application/json"}, path, cors); code != 401 {
		t.Errorf("post without credentials: %d", code)
	}
	if code, _ := post(map[string]string{"Authorization": "Basic b3BzOndyb25n"}, path, cors); code != 401 {
		t.Errorf("post with a wrong ops password: %d", code)
	}

	// Tenant isolation, as the API key routes: another tenant sees 404, an
	// agent may read its own tenant's settings but not change them.
	acme := "Bearer " + e.serviceToken("acme-client", "acme-secret")
	if code, _, _ := e.do(http.MethodGet, path, map[string]string{"Authorization": acme}, nil); code != 404 {
		t.Errorf("acme reading demo settings: %d", code)
	}
	if code, _ := post(map[string]string{"Authorization": acme}, path, cors); code != 403 {
		t.Errorf("acme writing demo settings: %d", code)
	}
	agent := "Bearer " + e.password("agent1", "agent123").AccessToken
	if got := settings(agent); len(got) != 1 {
		t.Errorf("agent reading its settings: %v", got)
	}
	if code, _ := post(map[string]string{"Authorization": agent}, path, cors); code != 403 {
		t.Errorf("agent writing settings: %d", code)
	}
	sup := "Bearer " + e.password("supervisor", "super123").AccessToken
	if code, body := post(map[string]string{"Authorization": sup, "Content-Type": "application/json"}, path, `{"data":{"name":"sup-note","value":{"a":[1,2]}}}`); code != 201 {
		t.Errorf("supervisor writing settings: %d %s", code, body)
	}
	acmePath := "/environment/v3/contact-centers/" + acmeCCID + "/settings"
	if code, _, body := e.do(http.MethodGet, acmePath, opsAuth, nil); code != 200 || strings.Contains(string(body), "cors-origins") {
		t.Errorf("acme's settings: %d %s", code, body)
	}

	// Survives a restart; delete; reset-demo drops the demo tenant's settings.
	e.start()
	if got := settings(ops); len(got) != 2 {
		t.Fatalf("after restart: %v", got)
	}
	if code, _, _ := e.do(http.MethodDelete, path+"/sup-note", opsAuth, nil); code != 200 {
		t.Fatalf("delete: %d", code)
	}
	if code, _, _ := e.do(http.MethodGet, path+"/sup-note", opsAuth, nil); code != 404 {
		t.Fatalf("get after delete: %d", code)
	}
	if code, _, _ := e.do(http.MethodDelete, path+"/sup-note", opsAuth, nil); code != 404 {
		t.Fatalf("delete again: %d", code)
	}
	if code, _, _ := e.do(http.MethodPost, "/auth/v3/ops/emulator/reset-demo", opsAuth, nil); code != 200 {
		t.Fatalf("reset demo: %d", code)
	}
	if got := settings(ops); len(got) != 0 {
		t.Fatalf("after reset-demo: %v", got)
	}
}
