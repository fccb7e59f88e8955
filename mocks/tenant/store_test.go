package tenant_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cxlab/cxlab/appliance/store/storetest"
	"github.com/cxlab/cxlab/mocks/tenant"
)

func TestMain(m *testing.M) { storetest.Main(m) }

func startStore(t *testing.T) (*tenant.Store, *pgxpool.Pool) {
	t.Helper()
	pool := storetest.Pool(t)
	s := tenant.NewStore(pool, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	return s, pool
}

// dump renders every tenant table as sorted JSON rows, to compare states.
func dump(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var b strings.Builder
	for _, table := range []string{"contact_centers", "users", "dns", "callback_services", "callin_groups", "agent_groups", "oauth_clients", "api_keys"} {
		rows, err := pool.Query(context.Background(), `SELECT to_jsonb(t)::text FROM tenant.`+table+` t ORDER BY 1`)
		if err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			b.WriteString(table + " " + s + "\n")
		}
		rows.Close()
	}
	return b.String()
}

func loadSeed(t *testing.T, path string) tenant.Seed {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := tenant.ParseSeed(f)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDemoSeedMatchesContract(t *testing.T) {
	s, _ := startStore(t)
	ctx := context.Background()
	cc, err := s.ContactCenter(ctx, tenant.DemoCCID)
	if err != nil {
		t.Fatal(err)
	}
	if cc.Name != "demo" || cc.SIPDomain != "demo.cxlab.local" {
		t.Fatalf("demo contact center = %+v", cc)
	}
	u, err := s.User(ctx, tenant.DemoCCID, "agent1")
	if err != nil {
		t.Fatal(err)
	}
	if u.DBID != 101 || u.DN != "7001" || !tenant.CheckSecret(u.PasswordHash, "agent123") || len(u.Skills) != 2 {
		t.Fatalf("agent1 = %+v", u)
	}
	if tenant.CheckSecret(u.PasswordHash, "wrong") {
		t.Fatal("wrong password accepted")
	}
	a3, _ := s.User(ctx, tenant.DemoCCID, "agent3")
	if len(a3.Skills) != 1 || a3.Skills[0] != "VQ_Support" {
		t.Fatalf("agent3 skills = %v", a3.Skills)
	}
	sup, err := s.User(ctx, tenant.DemoCCID, "supervisor")
	if err != nil || !sup.HasRole(tenant.RoleSupervisor) || !tenant.CheckSecret(sup.PasswordHash, "super123") {
		t.Fatalf("supervisor = %+v, %v", sup, err)
	}
	svcs, err := s.CallbackServices(ctx, tenant.DemoCCID)
	if err != nil || len(svcs) != 2 {
		t.Fatalf("callback services = %+v, %v", svcs, err)
	}
	sales, support := svcs[0], svcs[1]
	if sales.Name != "CB_Sales" || sales.TimeZone != "America/New_York" || sales.CapacityPerSlot != 10 || sales.MaxDialAttempts != 3 ||
		len(sales.BusinessHours.Weekly) != 5 || sales.BusinessHours.Weekly["sat"] != nil || len(sales.BusinessHours.Holidays) != 2 ||
		sales.DialInNumber != "+18005550100" {
		t.Fatalf("CB_Sales = %+v", sales)
	}
	if support.VirtualQueue != "VQ_Support" || len(support.BusinessHours.Weekly) != 7 || support.BusinessHours.Weekly["sun"][0].Close != "24:00" ||
		support.SlotDurationMin != 30 || support.RetryDelaySec != 20 {
		t.Fatalf("CB_Support = %+v", support)
	}
	key, err := s.APIKey(ctx, "cxlab-demo-api-key-0000000000000000")
	if err != nil || key.CCID != tenant.DemoCCID {
		t.Fatalf("api key = %+v, %v", key, err)
	}
	cl, err := s.Client(ctx, "webrtc-clientid")
	if err != nil || !tenant.CheckSecret(cl.SecretHash, "webrtc-secret") || cl.AllowsGrant("password") || !cl.AllowsGrant("urn:ietf:params:oauth:grant-type:jwt-bearer") {
		t.Fatalf("webrtc client = %+v, %v", cl, err)
	}
	dns, err := s.DNs(ctx, tenant.DemoCCID)
	if err != nil || len(dns) != 4 || dns[0].SIPPassword != "dnpass" {
		t.Fatalf("dns = %+v, %v", dns, err)
	}
	groups, err := s.CallinGroups(ctx, tenant.DemoCCID)
	if err != nil || len(groups) != 1 || groups[0].ExpirySec != 600 || !groups[0].AccessCodeEnabled || groups[0].VirtualQueue != "VQ_Support" {
		t.Fatalf("callin groups = %+v, %v", groups, err)
	}
}

func TestApplyTwiceChangesNothing(t *testing.T) {
	s, pool := startStore(t)
	ctx := context.Background()
	second := loadSeed(t, "testdata/second.yaml")
	if err := s.Apply(ctx, second); err != nil {
		t.Fatal(err)
	}
	before := dump(t, pool)
	demo, err := tenant.DemoSeed()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, demo); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, second); err != nil {
		t.Fatal(err)
	}
	// Restarting is a no-op too (the demo seed is applied on first start only).
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if after := dump(t, pool); after != before {
		t.Fatalf("re-applying seeds changed the store:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if !strings.Contains(before, "acme.cxlab.local") || !strings.Contains(before, "demo.cxlab.local") {
		t.Fatal("dump misses a tenant")
	}
}

func TestApplyUpdatesChangedValues(t *testing.T) {
	s, _ := startStore(t)
	ctx := context.Background()
	demo, _ := tenant.DemoSeed()
	demo.ContactCenters[0].Users[0].Password = "newpass1"
	demo.ContactCenters[0].CallbackServices[0].CapacityPerSlot = 3
	if err := s.Apply(ctx, demo); err != nil {
		t.Fatal(err)
	}
	u, _ := s.User(ctx, tenant.DemoCCID, "agent1")
	if !tenant.CheckSecret(u.PasswordHash, "newpass1") || u.DBID != 101 {
		t.Fatalf("agent1 after update = %+v", u)
	}
	svcs, _ := s.CallbackServices(ctx, tenant.DemoCCID)
	if svcs[0].CapacityPerSlot != 3 {
		t.Fatalf("capacity = %d", svcs[0].CapacityPerSlot)
	}
	// Reset restores the published demo values and drops added keys.
	if _, err := s.PutAPIKey(ctx, tenant.APIKey{Key: "extra-key-123456", CCID: tenant.DemoCCID}); err != nil {
		t.Fatal(err)
	}
	if err := s.ResetDemo(ctx); err != nil {
		t.Fatal(err)
	}
	u, _ = s.User(ctx, tenant.DemoCCID, "agent1")
	if !tenant.CheckSecret(u.PasswordHash, "agent123") {
		t.Fatal("reset did not restore agent1's password")
	}
	if _, err := s.APIKey(ctx, "extra-key-123456"); !errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("extra key after reset: %v", err)
	}
}

func TestTenantIsolationAndConflicts(t *testing.T) {
	s, _ := startStore(t)
	ctx := context.Background()
	if err := s.Apply(ctx, loadSeed(t, "testdata/second.yaml")); err != nil {
		t.Fatal(err)
	}
	acme := tenant.CCID("0b6f3c1e-7d2a-4f55-9a4e-2c9d8e1f0a11")
	both, err := s.UsersNamed(ctx, "agent1")
	if err != nil || len(both) != 2 {
		t.Fatalf("agent1 in two tenants: %+v, %v", both, err)
	}
	svcs, _ := s.CallbackServices(ctx, acme)
	if len(svcs) != 1 || svcs[0].Name != "CB_Acme" {
		t.Fatalf("acme services = %+v", svcs)
	}
	// A dbid of another tenant is a conflict, never a move between tenants.
	_, err = s.PutUser(ctx, tenant.User{DBID: 101, CCID: acme, UserName: "thief", Roles: []string{"agent"}}, "x")
	if !errors.Is(err, tenant.ErrConflict) {
		t.Fatalf("stealing dbid 101: %v", err)
	}
	if u, _ := s.UserByDBID(ctx, 101); u.CCID != tenant.DemoCCID || u.UserName != "agent1" {
		t.Fatalf("dbid 101 now %+v", u)
	}
	// An API key bound to one tenant cannot be rebound to another.
	_, err = s.PutAPIKey(ctx, tenant.APIKey{Key: "cxlab-demo-api-key-0000000000000000", CCID: acme})
	if !errors.Is(err, tenant.ErrConflict) {
		t.Fatalf("rebinding demo key: %v", err)
	}
	// A new person without dbid gets one from the sequence.
	u, err := s.PutUser(ctx, tenant.User{CCID: acme, UserName: "newbie", Roles: []string{"agent"}, Enabled: true}, "pw123456")
	if err != nil || u.DBID < 100000 {
		t.Fatalf("new user = %+v, %v", u, err)
	}
}

func TestSeedValidation(t *testing.T) {
	s, _ := startStore(t)
	ctx := context.Background()
	if _, err := tenant.ParseSeed(strings.NewReader("contactCenters:\n  - id: x\n    nmae: typo\n")); err == nil { //nolint:misspell // the misspelt key is the point of the test
		t.Fatal("unknown key accepted")
	}
	if _, err := tenant.ParseSeed(strings.NewReader("contactCenters:\n  - businessHours: 24x5\n")); err == nil {
		t.Fatal("bad businessHours accepted")
	}
	bad := []string{
		`contactCenters: [{id: not-a-uuid, name: x, sipDomain: x.local}]`,
		`contactCenters: [{id: 11111111-2222-3333-4444-555555555555, name: x, sipDomain: x.local,
  callbackServices: [{name: CB, virtualQueue: VQ, timeZone: Mars/Base, slotDurationMin: 15, capacityPerSlot: 1, maxDialAttempts: 1}]}]`,
		`contactCenters: [{id: 11111111-2222-3333-4444-555555555555, name: x, sipDomain: x.local,
  callbackServices: [{name: CB, virtualQueue: VQ, timeZone: UTC, slotDurationMin: 15, capacityPerSlot: 1, maxDialAttempts: 1,
    businessHours: {weekly: {mon: [{open: "20:00", close: "08:00"}]}}}]}]`,
		`contactCenters: [{id: 11111111-2222-3333-4444-555555555555, name: x, sipDomain: x.local, users: [{userName: nopass}]}]`,
		`clients: [{clientId: c1}]`,
	}
	for _, y := range bad {
		seed, err := tenant.ParseSeed(strings.NewReader(y))
		if err != nil {
			t.Fatalf("parse %q: %v", y, err)
		}
		if err := s.Apply(ctx, seed); !errors.Is(err, tenant.ErrInvalid) {
			t.Errorf("apply %q: err = %v, want ErrInvalid", y, err)
		}
	}
	// A failed apply leaves nothing behind (one transaction).
	if _, err := s.ContactCenter(ctx, "11111111-2222-3333-4444-555555555555"); !errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("partial apply left a contact center: %v", err)
	}
}

// Keys from the wire may hold bytes PostgreSQL text cannot (invalid UTF-8,
// NUL): a lookup by one finds nothing, and a write of one is invalid input.
func TestUnstorableText(t *testing.T) {
	s, _ := startStore(t)
	ctx := context.Background()
	for _, k := range []string{"agent\xff", "agent1\x00", "\xc3"} {
		if _, err := s.User(ctx, tenant.DemoCCID, k); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("User(%q): %v, want ErrNotFound", k, err)
		}
		if us, err := s.UsersNamed(ctx, k); err != nil || len(us) != 0 {
			t.Errorf("UsersNamed(%q) = %v, %v, want none", k, us, err)
		}
		if _, err := s.APIKey(ctx, k); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("APIKey(%q): %v, want ErrNotFound", k, err)
		}
		if _, err := s.Client(ctx, k); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("Client(%q): %v, want ErrNotFound", k, err)
		}
		if err := s.DeleteUser(ctx, tenant.DemoCCID, k); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("DeleteUser(%q): %v, want ErrNotFound", k, err)
		}
		if err := s.DeleteClient(ctx, k); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("DeleteClient(%q): %v, want ErrNotFound", k, err)
		}
		_, err := s.PutUser(ctx, tenant.User{CCID: tenant.DemoCCID, UserName: k, Roles: []string{"agent"}}, "pw123456")
		if !errors.Is(err, tenant.ErrInvalid) {
			t.Errorf("PutUser(%q): %v, want ErrInvalid", k, err)
		}
	}
	// The store still serves.
	if _, err := s.User(ctx, tenant.DemoCCID, "agent1"); err != nil {
		t.Fatal(err)
	}
}
