package gauth

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/cxlab/cxlab/mocks/tenant"
)

// caller is who calls an Environment route: ops (Basic) or a token holder.
type caller struct {
	ops    bool
	claims *claims
}

// tenantScope returns the only tenant the caller may see ("" = any).
func (k caller) tenantScope() tenant.CCID {
	if k.ops || k.claims == nil {
		return ""
	}
	return tenant.CCID(k.claims.ContactCenterID)
}

// canAdmin reports whether the caller may manage ccid's API keys: ops, or a
// supervisor/admin of that tenant.
func (k caller) canAdmin(ccid tenant.CCID) bool {
	if k.ops {
		return true
	}
	cl := k.claims
	return cl != nil && cl.isUser() && tenant.CCID(cl.ContactCenterID) == ccid &&
		(slices.Contains(cl.Authorities, "ROLE_SUPERVISOR") || slices.Contains(cl.Authorities, "ROLE_ADMIN"))
}

// identify accepts ops Basic credentials or a valid Bearer token.
func (s *Server) identify(c echo.Context) (caller, error, bool) {
	if s.isOps(c.Request()) {
		return caller{ops: true}, nil, true
	}
	raw := bearer(c.Request())
	if raw == "" {
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="gauth"`)
		return caller{}, envelope(c, http.StatusUnauthorized, "Bearer token or ops credentials required", nil), false
	}
	cl, err := s.validateAccess(c.Request().Context(), raw)
	if err != nil {
		if errors.Is(err, errTokenInvalid) {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="gauth", error="invalid_token"`)
			return caller{}, envelope(c, http.StatusUnauthorized, err.Error(), nil), false
		}
		return caller{}, err, false
	}
	return caller{claims: cl}, nil, true
}

// contactCenterBody is the Environment Service contact center shape.
type contactCenterBody struct {
	ID            tenant.CCID `json:"id"`
	Name          string      `json:"name"`
	Domains       []string    `json:"domains"`
	SIPDomain     string      `json:"sipDomain"`
	EnvironmentID string      `json:"environmentId"`
	Auth          string      `json:"auth"`
	CreatedAt     *time.Time  `json:"createdAt,omitempty"`
}

func toCCBody(cc tenant.ContactCenter) contactCenterBody {
	t := cc.CreatedAt
	return contactCenterBody{ID: cc.ID, Name: cc.Name, Domains: []string{cc.Name}, SIPDomain: cc.SIPDomain,
		EnvironmentID: cc.EnvironmentID, Auth: "configServer", CreatedAt: &t}
}

func (s *Server) envListCC(c echo.Context) error {
	k, err, good := s.identify(c)
	if !good {
		return err
	}
	ccs, err := s.tenants.ContactCenters(c.Request().Context())
	if err != nil {
		return s.storeError(c, "list contact centers", err)
	}
	out := []contactCenterBody{}
	for _, cc := range ccs {
		if scope := k.tenantScope(); scope == "" || scope == cc.ID {
			out = append(out, toCCBody(cc))
		}
	}
	return ok(c, out)
}

func (s *Server) envGetCC(c echo.Context) error {
	k, err, good := s.identify(c)
	if !good {
		return err
	}
	id := tenant.CCID(c.Param("ccid"))
	if scope := k.tenantScope(); scope != "" && scope != id {
		return envelope(c, http.StatusNotFound, "get contact center: not found", nil)
	}
	cc, err := s.tenants.ContactCenter(c.Request().Context(), id)
	if err != nil {
		return s.storeError(c, "get contact center", err)
	}
	return ok(c, toCCBody(cc))
}

// envCreateCC creates a tenant from {id?, name | domains[0], sipDomain?,
// environmentId?}; id defaults to a new UUID, sipDomain to <name>.cxlab.local,
// environmentId to the built-in cxlab-env. A given environmentId must name a
// stored environment (400 otherwise: the body is at fault, not the URL).
func (s *Server) envCreateCC(c echo.Context) error {
	var b contactCenterBody
	if done, err := decodeJSON(c, &b); !done {
		return err
	}
	if b.Name == "" && len(b.Domains) > 0 {
		b.Name = b.Domains[0]
	}
	if b.Name == "" {
		return envelope(c, http.StatusBadRequest, "name (or domains[0]) is required", nil)
	}
	if b.ID == "" {
		b.ID = tenant.CCID(uuid.NewString())
	}
	if b.SIPDomain == "" {
		b.SIPDomain = b.Name + ".cxlab.local"
	}
	ctx := c.Request().Context()
	if b.EnvironmentID == "" {
		b.EnvironmentID = defaultEnvironmentID
	} else if _, err := s.environment(ctx, b.EnvironmentID); errors.Is(err, tenant.ErrNotFound) {
		return envelope(c, http.StatusBadRequest, fmt.Sprintf("environmentId %q: no such environment (POST /environment/v3/environments first)", b.EnvironmentID), nil)
	} else if err != nil {
		return s.storeError(c, "create contact center", err)
	}
	if _, err := s.tenants.ContactCenter(ctx, b.ID); err == nil {
		return envelope(c, http.StatusConflict, "contact center "+string(b.ID)+" already exists", nil)
	}
	cc, err := s.tenants.PutContactCenter(ctx, tenant.ContactCenter{ID: b.ID, Name: b.Name, SIPDomain: b.SIPDomain, EnvironmentID: b.EnvironmentID})
	if err != nil {
		return s.storeError(c, "create contact center", err)
	}
	c.Response().Header().Set("Location", "/environment/v3/contact-centers/"+string(cc.ID))
	return envelope(c, http.StatusCreated, "created", toCCBody(cc))
}

func (s *Server) envListKeys(c echo.Context) error {
	k, err, good := s.identify(c)
	if !good {
		return err
	}
	id := tenant.CCID(c.Param("ccid"))
	if !k.canAdmin(id) {
		return envelope(c, http.StatusForbidden, "ops credentials or a supervisor of this contact center required", nil)
	}
	ctx := c.Request().Context()
	if _, err := s.tenants.ContactCenter(ctx, id); err != nil {
		return s.storeError(c, "list api keys", err)
	}
	keys, err := s.tenants.APIKeys(ctx, id)
	if err != nil {
		return s.storeError(c, "list api keys", err)
	}
	return ok(c, keys)
}

// envCreateKey binds a new key ({apiKey?, description?}; default a UUIDv4,
// as Genesys recommends) to the contact center.
func (s *Server) envCreateKey(c echo.Context) error {
	k, err, good := s.identify(c)
	if !good {
		return err
	}
	id := tenant.CCID(c.Param("ccid"))
	if !k.canAdmin(id) {
		return envelope(c, http.StatusForbidden, "ops credentials or a supervisor of this contact center required", nil)
	}
	var b struct {
		APIKey      string `json:"apiKey"`
		Description string `json:"description"`
	}
	if c.Request().ContentLength != 0 {
		if done, err := decodeJSON(c, &b); !done {
			return err
		}
	}
	if b.APIKey == "" {
		b.APIKey = uuid.NewString()
	}
	ctx := c.Request().Context()
	if _, err := s.tenants.ContactCenter(ctx, id); err != nil {
		return s.storeError(c, "create api key", err)
	}
	if existing, err := s.tenants.APIKey(ctx, b.APIKey); err == nil && existing.CCID == id {
		return envelope(c, http.StatusConflict, "api key already exists", nil)
	}
	key, err := s.tenants.PutAPIKey(ctx, tenant.APIKey{Key: b.APIKey, CCID: id, Description: b.Description})
	if err != nil {
		return s.storeError(c, "create api key", err)
	}
	return envelope(c, http.StatusCreated, "created", key)
}

func (s *Server) envDeleteKey(c echo.Context) error {
	k, err, good := s.identify(c)
	if !good {
		return err
	}
	id := tenant.CCID(c.Param("ccid"))
	if !k.canAdmin(id) {
		return envelope(c, http.StatusForbidden, "ops credentials or a supervisor of this contact center required", nil)
	}
	if err := s.tenants.DeleteAPIKey(c.Request().Context(), id, c.Param("key")); err != nil {
		return s.storeError(c, "delete api key", err)
	}
	return ok(c, nil)
}

// envLookupKey resolves an API key to its tenant (contract 3). A tenant-bound
// token only resolves its own tenant's keys; others are 404, not 403, so keys
// of other tenants cannot be probed.
func (s *Server) envLookupKey(c echo.Context) error {
	k, err, good := s.identify(c)
	if !good {
		return err
	}
	key, err := s.tenants.APIKey(c.Request().Context(), c.Param("key"))
	if err != nil {
		return s.storeError(c, "api key", err)
	}
	if scope := k.tenantScope(); scope != "" && scope != key.CCID {
		return envelope(c, http.StatusNotFound, "api key: not found", nil)
	}
	return ok(c, map[string]string{"apiKey": key.Key, "contactCenterId": string(key.CCID)})
}
