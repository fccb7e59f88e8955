package tenant

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cxlab/cxlab/appliance/store/postgres"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the embedded SQL migrations of schema "tenant".
func Migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		// fs.Sub only fails on an invalid path literal, which is fixed above.
		return migrationFiles
	}
	return sub
}

// Store is the tenant model kept in PostgreSQL (schema "tenant"). It is also the
// component that migrates the schema and seeds the demo tenant on first start.
type Store struct {
	pool *pgxpool.Pool
	log  *slog.Logger

	mu       sync.Mutex
	onChange []func(CCID)
}

// OnChange registers f, called after the admin paths change a tenant: a seed
// applied, the demo reset, a user deleted (with the tenant's CCID, once per
// contact center of a seed). Readers that cache the directory (Voice, GES)
// drop their copies there, so that a change is in effect when its request
// returns.
func (s *Store) OnChange(f func(CCID)) {
	s.mu.Lock()
	s.onChange = append(s.onChange, f)
	s.mu.Unlock()
}

func (s *Store) changed(ccids ...CCID) {
	s.mu.Lock()
	fs := slices.Clone(s.onChange)
	s.mu.Unlock()
	for _, id := range ccids {
		for _, f := range fs {
			f(id)
		}
	}
}

// NewStore returns a Store on pool. Call Start (or Migrate) before use.
func NewStore(pool *pgxpool.Pool, log *slog.Logger) *Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{pool: pool, log: log.With("component", "tenant")}
}

// Name implements the component contract.
func (s *Store) Name() string { return "tenant" }

// Start migrates the schema and applies the demo seed when no contact center
// exists yet (first start).
func (s *Store) Start(ctx context.Context) error {
	if err := s.Migrate(ctx); err != nil {
		return err
	}
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM tenant.contact_centers`).Scan(&n); err != nil {
		return fmt.Errorf("tenant start: count contact centers: %w", err)
	}
	if n > 0 {
		return nil
	}
	seed, err := DemoSeed()
	if err != nil {
		return err
	}
	if err := s.Apply(ctx, seed); err != nil {
		return fmt.Errorf("tenant start: seed demo: %w", err)
	}
	s.log.Info("seeded demo tenant", "ccid", DemoCCID)
	return nil
}

// Stop implements the component contract; the pool belongs to the caller.
func (s *Store) Stop(context.Context) error { return nil }

// Ready reports whether the schema answers queries.
func (s *Store) Ready(ctx context.Context) error {
	var one int
	if err := s.pool.QueryRow(ctx, `SELECT 1 FROM tenant.contact_centers LIMIT 1`).Scan(&one); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("tenant ready: %w", err)
	}
	return nil
}

// Migrate applies the embedded migrations.
func (s *Store) Migrate(ctx context.Context) error {
	if err := postgres.Migrate(ctx, s.pool, "tenant", Migrations()); err != nil {
		return fmt.Errorf("tenant migrate: %w", err)
	}
	return nil
}

// ---- contact centers ----

const ccCols = `ccid::text, name, sip_domain, environment_id, options, created_at`

func scanCC(row pgx.Row) (ContactCenter, error) {
	var cc ContactCenter
	var id string
	err := row.Scan(&id, &cc.Name, &cc.SIPDomain, &cc.EnvironmentID, &cc.Options, &cc.CreatedAt)
	cc.ID = CCID(id)
	return cc, err
}

// ContactCenters lists every tenant ordered by name.
func (s *Store) ContactCenters(ctx context.Context) ([]ContactCenter, error) {
	return queryAll(ctx, s.pool, "list contact centers", scanCC, `SELECT `+ccCols+` FROM tenant.contact_centers ORDER BY name`)
}

// ContactCenter returns one tenant by CCID.
func (s *Store) ContactCenter(ctx context.Context, id CCID) (ContactCenter, error) {
	if !validUUID(string(id)) {
		return ContactCenter{}, fmt.Errorf("get contact center %q: %w", id, ErrNotFound)
	}
	return queryOne(ctx, s.pool, "get contact center", scanCC, `SELECT `+ccCols+` FROM tenant.contact_centers WHERE ccid = $1`, string(id))
}

// ContactCenterByName returns one tenant by its name (the "tenant" of
// tenant\username logins).
func (s *Store) ContactCenterByName(ctx context.Context, name string) (ContactCenter, error) {
	return lookupOne(ctx, s.pool, "get contact center by name", scanCC, `SELECT `+ccCols+` FROM tenant.contact_centers WHERE name = $1`, name)
}

// PutContactCenter creates or updates a tenant by CCID.
func (s *Store) PutContactCenter(ctx context.Context, cc ContactCenter) (ContactCenter, error) {
	return putContactCenter(ctx, s.pool, cc)
}

func putContactCenter(ctx context.Context, q querier, cc ContactCenter) (ContactCenter, error) {
	if err := validateCC(cc); err != nil {
		return ContactCenter{}, err
	}
	if cc.Options == nil {
		cc.Options = map[string]map[string]string{}
	}
	return queryOne(ctx, q, "put contact center", scanCC, `
INSERT INTO tenant.contact_centers (ccid, name, sip_domain, environment_id, options)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (ccid) DO UPDATE SET name = EXCLUDED.name, sip_domain = EXCLUDED.sip_domain,
  environment_id = EXCLUDED.environment_id, options = EXCLUDED.options
RETURNING `+ccCols, string(cc.ID), cc.Name, cc.SIPDomain, cc.EnvironmentID, cc.Options)
}

// DeleteContactCenter removes a tenant and everything it owns.
func (s *Store) DeleteContactCenter(ctx context.Context, id CCID) error {
	return exec1(ctx, s.pool, "delete contact center", `DELETE FROM tenant.contact_centers WHERE ccid = $1`, string(id))
}

// ---- users ----

const userCols = `dbid, ccid::text, user_name, password_hash, first_name, last_name, email, roles, dn, skills, enabled`

func scanUser(row pgx.Row) (User, error) {
	var u User
	var id string
	err := row.Scan(&u.DBID, &id, &u.UserName, &u.PasswordHash, &u.FirstName, &u.LastName, &u.Email, &u.Roles, &u.DN, &u.Skills, &u.Enabled)
	u.CCID = CCID(id)
	return u, err
}

// Users lists a tenant's persons ordered by user name.
func (s *Store) Users(ctx context.Context, ccid CCID) ([]User, error) {
	return queryAll(ctx, s.pool, "list users", scanUser, `SELECT `+userCols+` FROM tenant.users WHERE ccid = $1 ORDER BY user_name`, string(ccid))
}

// User returns a tenant's person by user name.
func (s *Store) User(ctx context.Context, ccid CCID, userName string) (User, error) {
	return lookupOne(ctx, s.pool, "get user", scanUser, `SELECT `+userCols+` FROM tenant.users WHERE ccid = $1 AND user_name = $2`, string(ccid), userName)
}

// UserByDBID returns a person by dbid (unique across tenants).
func (s *Store) UserByDBID(ctx context.Context, dbid DBID) (User, error) {
	return queryOne(ctx, s.pool, "get user by dbid", scanUser, `SELECT `+userCols+` FROM tenant.users WHERE dbid = $1`, int64(dbid))
}

// UsersNamed lists persons with that user name in every tenant.
func (s *Store) UsersNamed(ctx context.Context, userName string) ([]User, error) {
	us, err := queryAll(ctx, s.pool, "find users", scanUser, `SELECT `+userCols+` FROM tenant.users WHERE user_name = $1 ORDER BY dbid`, userName)
	if isUnstorable(err) {
		return []User{}, nil
	}
	return us, err
}

// PutUser creates or updates a person by (ccid, user name). A zero DBID takes
// the existing one or a new one from the sequence; password is hashed unless
// it already matches the stored hash; an empty password keeps the stored hash.
func (s *Store) PutUser(ctx context.Context, u User, password string) (User, error) {
	return putUser(ctx, s.pool, u, password)
}

func putUser(ctx context.Context, q querier, u User, password string) (User, error) {
	if u.UserName == "" || !validUUID(string(u.CCID)) {
		return User{}, fmt.Errorf("put user: user name and contact center required: %w", ErrInvalid)
	}
	cur, err := queryOne(ctx, q, "put user", scanUser, `SELECT `+userCols+` FROM tenant.users WHERE ccid = $1 AND user_name = $2`, string(u.CCID), u.UserName)
	switch {
	case err == nil:
		if u.DBID == 0 {
			u.DBID = cur.DBID
		} else if u.DBID != cur.DBID {
			return User{}, fmt.Errorf("put user %s: dbid %d differs from stored %d: %w", u.UserName, u.DBID, cur.DBID, ErrConflict)
		}
		u.PasswordHash = cur.PasswordHash
	case errors.Is(err, ErrNotFound):
		if password == "" && u.PasswordHash == "" {
			return User{}, fmt.Errorf("put user %s: password required: %w", u.UserName, ErrInvalid)
		}
	default:
		return User{}, err
	}
	if password != "" {
		if u.PasswordHash, err = keepOrHash(u.PasswordHash, password); err != nil {
			return User{}, fmt.Errorf("put user %s: %w", u.UserName, err)
		}
	}
	if u.DBID == 0 {
		if err := q.QueryRow(ctx, `SELECT nextval('tenant.user_dbid_seq')`).Scan(&u.DBID); err != nil {
			return User{}, fmt.Errorf("put user: next dbid: %w", err)
		}
	}
	u.Roles = nonNil(u.Roles)
	u.Skills = nonNil(u.Skills)
	// ON CONFLICT (dbid) with a ccid guard: a dbid owned by another tenant is a
	// conflict, never a silent move between tenants.
	out, err := queryOne(ctx, q, "put user", scanUser, `
INSERT INTO tenant.users (dbid, ccid, user_name, password_hash, first_name, last_name, email, roles, dn, skills, enabled)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (dbid) DO UPDATE SET user_name = EXCLUDED.user_name, password_hash = EXCLUDED.password_hash,
  first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name, email = EXCLUDED.email, roles = EXCLUDED.roles,
  dn = EXCLUDED.dn, skills = EXCLUDED.skills, enabled = EXCLUDED.enabled
  WHERE tenant.users.ccid = EXCLUDED.ccid
RETURNING `+userCols,
		int64(u.DBID), string(u.CCID), u.UserName, u.PasswordHash, u.FirstName, u.LastName, u.Email, u.Roles, u.DN, u.Skills, u.Enabled)
	if errors.Is(err, ErrNotFound) {
		return User{}, fmt.Errorf("put user %s: dbid %d belongs to another tenant: %w", u.UserName, u.DBID, ErrConflict)
	}
	return out, err
}

// DeleteUser removes a person.
func (s *Store) DeleteUser(ctx context.Context, ccid CCID, userName string) error {
	if err := exec1(ctx, s.pool, "delete user", `DELETE FROM tenant.users WHERE ccid = $1 AND user_name = $2`, string(ccid), userName); err != nil {
		return err
	}
	s.changed(ccid)
	return nil
}

// ---- DNs ----

func scanDN(row pgx.Row) (DN, error) {
	var d DN
	var id string
	err := row.Scan(&id, &d.Number, &d.Type, &d.SIPPassword)
	d.CCID = CCID(id)
	return d, err
}

// DNs lists a tenant's directory numbers.
func (s *Store) DNs(ctx context.Context, ccid CCID) ([]DN, error) {
	return queryAll(ctx, s.pool, "list dns", scanDN, `SELECT ccid::text, number, type, sip_password FROM tenant.dns WHERE ccid = $1 ORDER BY number`, string(ccid))
}

// PutDN creates or updates a directory number.
func (s *Store) PutDN(ctx context.Context, d DN) error {
	return putDN(ctx, s.pool, d)
}

func putDN(ctx context.Context, q querier, d DN) error {
	if d.Number == "" {
		return fmt.Errorf("put dn: number required: %w", ErrInvalid)
	}
	if d.Type == "" {
		d.Type = "Extension"
	}
	_, err := q.Exec(ctx, `
INSERT INTO tenant.dns (ccid, number, type, sip_password) VALUES ($1, $2, $3, $4)
ON CONFLICT (ccid, number) DO UPDATE SET type = EXCLUDED.type, sip_password = EXCLUDED.sip_password`,
		string(d.CCID), d.Number, d.Type, d.SIPPassword)
	if err != nil {
		return fmt.Errorf("put dn %s: %w", d.Number, mapPgError(err))
	}
	return nil
}

// ---- callback services, call-in groups, agent groups ----

func scanCBS(row pgx.Row) (CallbackService, error) {
	var c CallbackService
	var id string
	var bh []byte
	err := row.Scan(&id, &c.Name, &c.VirtualQueue, &c.TimeZone, &bh, &c.SlotDurationMin, &c.CapacityPerSlot,
		&c.ImmediateEnabled, &c.ScheduledEnabled, &c.MaxDialAttempts, &c.RetryDelaySec, &c.DialInNumber)
	if err != nil {
		return c, err
	}
	c.CCID = CCID(id)
	if err := json.Unmarshal(bh, &c.BusinessHours); err != nil {
		return c, fmt.Errorf("decode business hours of %s: %w", c.Name, err)
	}
	return c, nil
}

// CallbackServices lists a tenant's callback services.
func (s *Store) CallbackServices(ctx context.Context, ccid CCID) ([]CallbackService, error) {
	return queryAll(ctx, s.pool, "list callback services", scanCBS, `
SELECT ccid::text, name, virtual_queue, time_zone, business_hours, slot_duration_min, capacity_per_slot,
  immediate_enabled, scheduled_enabled, max_dial_attempts, retry_delay_sec, dial_in_number
FROM tenant.callback_services WHERE ccid = $1 ORDER BY name`, string(ccid))
}

// PutCallbackService creates or updates a callback service by name.
func (s *Store) PutCallbackService(ctx context.Context, c CallbackService) error {
	return putCallbackService(ctx, s.pool, c)
}

func putCallbackService(ctx context.Context, q querier, c CallbackService) error {
	if err := validateCBS(c); err != nil {
		return err
	}
	if c.BusinessHours.Weekly == nil {
		c.BusinessHours.Weekly = map[string][]Interval{}
	}
	c.BusinessHours.Holidays = nonNil(c.BusinessHours.Holidays)
	bh, err := json.Marshal(c.BusinessHours)
	if err != nil {
		return fmt.Errorf("put callback service %s: %w", c.Name, err)
	}
	_, err = q.Exec(ctx, `
INSERT INTO tenant.callback_services (ccid, name, virtual_queue, time_zone, business_hours, slot_duration_min,
  capacity_per_slot, immediate_enabled, scheduled_enabled, max_dial_attempts, retry_delay_sec, dial_in_number)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (ccid, name) DO UPDATE SET virtual_queue = EXCLUDED.virtual_queue, time_zone = EXCLUDED.time_zone,
  business_hours = EXCLUDED.business_hours, slot_duration_min = EXCLUDED.slot_duration_min,
  capacity_per_slot = EXCLUDED.capacity_per_slot, immediate_enabled = EXCLUDED.immediate_enabled,
  scheduled_enabled = EXCLUDED.scheduled_enabled, max_dial_attempts = EXCLUDED.max_dial_attempts,
  retry_delay_sec = EXCLUDED.retry_delay_sec, dial_in_number = EXCLUDED.dial_in_number`,
		string(c.CCID), c.Name, c.VirtualQueue, c.TimeZone, bh, c.SlotDurationMin, c.CapacityPerSlot,
		c.ImmediateEnabled, c.ScheduledEnabled, c.MaxDialAttempts, c.RetryDelaySec, c.DialInNumber)
	if err != nil {
		return fmt.Errorf("put callback service %s: %w", c.Name, mapPgError(err))
	}
	return nil
}

func scanCallin(row pgx.Row) (CallinGroup, error) {
	var g CallinGroup
	var id string
	err := row.Scan(&id, &g.Name, &g.AccessNumber, &g.AccessCodeEnabled, &g.ExpirySec, &g.VirtualQueue)
	g.CCID = CCID(id)
	return g, err
}

// CallinGroups lists a tenant's Click-to-Call-In groups.
func (s *Store) CallinGroups(ctx context.Context, ccid CCID) ([]CallinGroup, error) {
	return queryAll(ctx, s.pool, "list callin groups", scanCallin, `
SELECT ccid::text, name, access_number, access_code_enabled, expiry_sec, virtual_queue FROM tenant.callin_groups
WHERE ccid = $1 ORDER BY name`, string(ccid))
}

// PutCallinGroup creates or updates a Click-to-Call-In group by name.
func (s *Store) PutCallinGroup(ctx context.Context, g CallinGroup) error {
	return putCallinGroup(ctx, s.pool, g)
}

func putCallinGroup(ctx context.Context, q querier, g CallinGroup) error {
	if g.Name == "" || g.AccessNumber == "" || g.ExpirySec <= 0 {
		return fmt.Errorf("put callin group %q: name, access number and positive expiry required: %w", g.Name, ErrInvalid)
	}
	_, err := q.Exec(ctx, `
INSERT INTO tenant.callin_groups (ccid, name, access_number, access_code_enabled, expiry_sec, virtual_queue)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (ccid, name) DO UPDATE SET access_number = EXCLUDED.access_number,
  access_code_enabled = EXCLUDED.access_code_enabled, expiry_sec = EXCLUDED.expiry_sec,
  virtual_queue = EXCLUDED.virtual_queue`,
		string(g.CCID), g.Name, g.AccessNumber, g.AccessCodeEnabled, g.ExpirySec, g.VirtualQueue)
	if err != nil {
		return fmt.Errorf("put callin group %s: %w", g.Name, mapPgError(err))
	}
	return nil
}

func scanAgentGroup(row pgx.Row) (AgentGroup, error) {
	var g AgentGroup
	var id string
	err := row.Scan(&id, &g.Name, &g.Members, &g.UserProperties)
	g.CCID = CCID(id)
	return g, err
}

// AgentGroups lists a tenant's agent groups.
func (s *Store) AgentGroups(ctx context.Context, ccid CCID) ([]AgentGroup, error) {
	return queryAll(ctx, s.pool, "list agent groups", scanAgentGroup, `
SELECT ccid::text, name, members, user_properties FROM tenant.agent_groups WHERE ccid = $1 ORDER BY name`, string(ccid))
}

// PutAgentGroup creates or updates an agent group by name.
func (s *Store) PutAgentGroup(ctx context.Context, g AgentGroup) error {
	return putAgentGroup(ctx, s.pool, g)
}

func putAgentGroup(ctx context.Context, q querier, g AgentGroup) error {
	if g.Name == "" {
		return fmt.Errorf("put agent group: name required: %w", ErrInvalid)
	}
	if g.UserProperties == nil {
		g.UserProperties = map[string]map[string]string{}
	}
	_, err := q.Exec(ctx, `
INSERT INTO tenant.agent_groups (ccid, name, members, user_properties) VALUES ($1, $2, $3, $4)
ON CONFLICT (ccid, name) DO UPDATE SET members = EXCLUDED.members, user_properties = EXCLUDED.user_properties`,
		string(g.CCID), g.Name, nonNil(g.Members), g.UserProperties)
	if err != nil {
		return fmt.Errorf("put agent group %s: %w", g.Name, mapPgError(err))
	}
	return nil
}

// ---- OAuth clients ----

const clientCols = `client_id, secret_hash, name, grant_types, redirect_uris, access_ttl_sec, refresh_ttl_sec, authorities, scopes, coalesce(ccid::text, '')`

func scanClient(row pgx.Row) (Client, error) {
	var c Client
	var access, refresh int
	var id string
	err := row.Scan(&c.ID, &c.SecretHash, &c.Name, &c.GrantTypes, &c.RedirectURIs, &access, &refresh, &c.Authorities, &c.Scopes, &id)
	c.AccessTokenTTL = time.Duration(access) * time.Second
	c.RefreshTokenTTL = time.Duration(refresh) * time.Second
	c.CCID = CCID(id)
	return c, err
}

// Clients lists every OAuth client.
func (s *Store) Clients(ctx context.Context) ([]Client, error) {
	return queryAll(ctx, s.pool, "list clients", scanClient, `SELECT `+clientCols+` FROM tenant.oauth_clients ORDER BY client_id`)
}

// Client returns one OAuth client.
func (s *Store) Client(ctx context.Context, id string) (Client, error) {
	return lookupOne(ctx, s.pool, "get client", scanClient, `SELECT `+clientCols+` FROM tenant.oauth_clients WHERE client_id = $1`, id)
}

// PutClient creates or updates an OAuth client. secret is hashed unless it
// already matches; an empty secret keeps the stored hash (required on create).
func (s *Store) PutClient(ctx context.Context, c Client, secret string) (Client, error) {
	return putClient(ctx, s.pool, c, secret)
}

func putClient(ctx context.Context, q querier, c Client, secret string) (Client, error) {
	if c.ID == "" {
		return Client{}, fmt.Errorf("put client: client_id required: %w", ErrInvalid)
	}
	if c.AccessTokenTTL <= 0 || c.RefreshTokenTTL <= 0 {
		return Client{}, fmt.Errorf("put client %s: token lifetimes must be positive: %w", c.ID, ErrInvalid)
	}
	cur, err := queryOne(ctx, q, "put client", scanClient, `SELECT `+clientCols+` FROM tenant.oauth_clients WHERE client_id = $1`, c.ID)
	switch {
	case err == nil:
		c.SecretHash = cur.SecretHash
	case errors.Is(err, ErrNotFound):
		if secret == "" {
			return Client{}, fmt.Errorf("put client %s: secret required: %w", c.ID, ErrInvalid)
		}
	default:
		return Client{}, err
	}
	if secret != "" {
		if c.SecretHash, err = keepOrHash(c.SecretHash, secret); err != nil {
			return Client{}, fmt.Errorf("put client %s: %w", c.ID, err)
		}
	}
	var ccid *string
	if c.CCID != "" {
		// Named here, as the caller wrote it: PostgreSQL would answer an
		// invalid-syntax or foreign-key error about a column.
		if _, err := uuid.Parse(string(c.CCID)); err != nil {
			return Client{}, fmt.Errorf("put client %s: contact center id %q is not a UUID: %w", c.ID, c.CCID, ErrInvalid)
		}
		var n int
		if err := q.QueryRow(ctx, `SELECT count(*) FROM tenant.contact_centers WHERE ccid = $1`, string(c.CCID)).Scan(&n); err != nil {
			return Client{}, fmt.Errorf("put client %s: %w", c.ID, err)
		}
		if n == 0 {
			return Client{}, fmt.Errorf("put client %s: contact center %s does not exist: %w", c.ID, c.CCID, ErrInvalid)
		}
		v := string(c.CCID)
		ccid = &v
	}
	return queryOne(ctx, q, "put client", scanClient, `
INSERT INTO tenant.oauth_clients (client_id, secret_hash, name, grant_types, redirect_uris, access_ttl_sec, refresh_ttl_sec, authorities, scopes, ccid)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (client_id) DO UPDATE SET secret_hash = EXCLUDED.secret_hash, name = EXCLUDED.name,
  grant_types = EXCLUDED.grant_types, redirect_uris = EXCLUDED.redirect_uris, access_ttl_sec = EXCLUDED.access_ttl_sec,
  refresh_ttl_sec = EXCLUDED.refresh_ttl_sec, authorities = EXCLUDED.authorities, scopes = EXCLUDED.scopes, ccid = EXCLUDED.ccid
RETURNING `+clientCols,
		c.ID, c.SecretHash, c.Name, nonNil(c.GrantTypes), nonNil(c.RedirectURIs), int(c.AccessTokenTTL/time.Second),
		int(c.RefreshTokenTTL/time.Second), nonNil(c.Authorities), nonNil(c.Scopes), ccid)
}

// DeleteClient removes an OAuth client.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	return exec1(ctx, s.pool, "delete client", `DELETE FROM tenant.oauth_clients WHERE client_id = $1`, id)
}

// ---- API keys ----

func scanAPIKey(row pgx.Row) (APIKey, error) {
	var k APIKey
	var id string
	err := row.Scan(&k.Key, &id, &k.Description, &k.CreatedAt)
	k.CCID = CCID(id)
	return k, err
}

// APIKeys lists a tenant's Engagement API keys.
func (s *Store) APIKeys(ctx context.Context, ccid CCID) ([]APIKey, error) {
	return queryAll(ctx, s.pool, "list api keys", scanAPIKey, `
SELECT api_key, ccid::text, description, created_at FROM tenant.api_keys WHERE ccid = $1 ORDER BY created_at, api_key`, string(ccid))
}

// APIKey resolves an Engagement API key to its tenant.
func (s *Store) APIKey(ctx context.Context, key string) (APIKey, error) {
	return lookupOne(ctx, s.pool, "get api key", scanAPIKey, `
SELECT api_key, ccid::text, description, created_at FROM tenant.api_keys WHERE api_key = $1`, key)
}

// PutAPIKey binds key to a tenant (creates it, or updates its description).
// A key bound to another tenant is a conflict.
func (s *Store) PutAPIKey(ctx context.Context, k APIKey) (APIKey, error) {
	return putAPIKey(ctx, s.pool, k)
}

func putAPIKey(ctx context.Context, q querier, k APIKey) (APIKey, error) {
	if len(k.Key) < 8 {
		return APIKey{}, fmt.Errorf("put api key: key must have at least 8 characters: %w", ErrInvalid)
	}
	out, err := queryOne(ctx, q, "put api key", scanAPIKey, `
INSERT INTO tenant.api_keys (api_key, ccid, description) VALUES ($1, $2, $3)
ON CONFLICT (api_key) DO UPDATE SET description = EXCLUDED.description WHERE tenant.api_keys.ccid = EXCLUDED.ccid
RETURNING api_key, ccid::text, description, created_at`, k.Key, string(k.CCID), k.Description)
	if errors.Is(err, ErrNotFound) {
		return APIKey{}, fmt.Errorf("put api key: bound to another contact center: %w", ErrConflict)
	}
	return out, err
}

// DeleteAPIKey removes a tenant's API key.
func (s *Store) DeleteAPIKey(ctx context.Context, ccid CCID, key string) error {
	return exec1(ctx, s.pool, "delete api key", `DELETE FROM tenant.api_keys WHERE ccid = $1 AND api_key = $2`, string(ccid), key)
}

// ---- helpers ----

// querier is what both a pool and a transaction offer.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func queryAll[T any](ctx context.Context, q querier, op string, scan func(pgx.Row) (T, error), sql string, args ...any) ([]T, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, mapPgError(err))
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, mapPgError(err))
	}
	return out, nil
}

func queryOne[T any](ctx context.Context, q querier, op string, scan func(pgx.Row) (T, error), sql string, args ...any) (T, error) {
	v, err := scan(q.QueryRow(ctx, sql, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return v, fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	if err != nil {
		return v, fmt.Errorf("%s: %w", op, mapPgError(err))
	}
	return v, nil
}

// lookupOne is queryOne for a lookup by a key from the wire: a key that
// PostgreSQL cannot hold as text (invalid UTF-8, NUL) is not found, since
// nothing stored equals it.
func lookupOne[T any](ctx context.Context, q querier, op string, scan func(pgx.Row) (T, error), sql string, args ...any) (T, error) {
	v, err := queryOne(ctx, q, op, scan, sql, args...)
	if isUnstorable(err) {
		return v, fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	return v, err
}

// exec1 runs a statement that must touch one row (every caller deletes by
// key): a key PostgreSQL cannot hold as text names nothing, so it is not found.
func exec1(ctx context.Context, q querier, op, sql string, args ...any) error {
	tag, err := q.Exec(ctx, sql, args...)
	if isUnstorable(err) {
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", op, mapPgError(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
