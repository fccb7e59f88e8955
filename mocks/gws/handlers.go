package gws

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/cxlab/cxlab/mocks/tenant"
)

// tenantFor resolves the tenant a request may read, or writes the refusal.
func (s *Server) tenantFor(c echo.Context, p Principal) (tenant.ContactCenter, error, bool) {
	ctx := c.Request().Context()
	asked := c.QueryParam("ccid")
	if p.CCID != "" {
		if asked != "" && asked != p.CCID {
			return tenant.ContactCenter{}, v3Error(c, http.StatusForbidden, "token of another contact center"), false
		}
		cc, err := s.tenants.ContactCenter(ctx, tenant.CCID(p.CCID))
		if err != nil {
			return cc, s.storeError(c, "contact center", err), false
		}
		return cc, nil, true
	}
	if asked != "" {
		cc, err := s.tenants.ContactCenter(ctx, tenant.CCID(asked))
		if err != nil {
			return cc, s.storeError(c, "contact center", err), false
		}
		return cc, nil, true
	}
	if dom := c.QueryParam("sip_domain"); dom != "" {
		ccs, err := s.tenants.ContactCenters(ctx)
		if err != nil {
			return tenant.ContactCenter{}, s.storeError(c, "contact centers", err), false
		}
		for _, cc := range ccs {
			if strings.EqualFold(cc.SIPDomain, dom) {
				return cc, nil, true
			}
		}
		return tenant.ContactCenter{}, v3Error(c, http.StatusNotFound, "no contact center with SIP domain "+dom), false
	}
	return tenant.ContactCenter{}, v3Error(c, http.StatusBadRequest, "query parameter ccid is required for client tokens"), false
}

// Person is a configuration person object.
type Person struct {
	DBID            int64    `json:"dbid"`
	UserName        string   `json:"userName"`
	FirstName       string   `json:"firstName"`
	LastName        string   `json:"lastName"`
	EmailAddress    string   `json:"emailAddress,omitempty"`
	ContactCenterID string   `json:"contactCenterId"`
	Roles           []string `json:"roles"`
	DN              string   `json:"dn,omitempty"`
	SIPDomain       string   `json:"sipDomain"`
	Skills          []string `json:"skills"`
	Enabled         bool     `json:"enabled"`
}

func toPerson(u tenant.User, cc tenant.ContactCenter) Person {
	return Person{DBID: int64(u.DBID), UserName: u.UserName, FirstName: u.FirstName, LastName: u.LastName, EmailAddress: u.Email,
		ContactCenterID: string(u.CCID), Roles: u.Roles, DN: u.DN, SIPDomain: cc.SIPDomain, Skills: u.Skills, Enabled: u.Enabled}
}

// persons serves ?user_name= and ?dbid= filters. A service client bound to no
// tenant may search a user name across tenants by omitting ccid.
func (s *Server) persons(c echo.Context) error {
	p := principal(c)
	ctx := c.Request().Context()
	name := c.QueryParam("user_name")
	var dbid int64
	if v := c.QueryParam("dbid"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return v3Error(c, http.StatusBadRequest, "dbid must be an integer")
		}
		dbid = n
	}
	var users []tenant.User
	ccByID := map[tenant.CCID]tenant.ContactCenter{}
	if p.CCID == "" && c.QueryParam("ccid") == "" && c.QueryParam("sip_domain") == "" && name != "" {
		found, err := s.tenants.UsersNamed(ctx, name)
		if err != nil {
			return s.storeError(c, "persons", err)
		}
		users = found
	} else {
		cc, err, good := s.tenantFor(c, p)
		if !good {
			return err
		}
		ccByID[cc.ID] = cc
		all, err := s.tenants.Users(ctx, cc.ID)
		if err != nil {
			return s.storeError(c, "persons", err)
		}
		for _, u := range all {
			if name == "" || u.UserName == name {
				users = append(users, u)
			}
		}
	}
	out := []Person{}
	for _, u := range users {
		if dbid != 0 && int64(u.DBID) != dbid {
			continue
		}
		cc, found := ccByID[u.CCID]
		if !found {
			got, err := s.tenants.ContactCenter(ctx, u.CCID)
			if err != nil {
				return s.storeError(c, "persons", err)
			}
			cc, ccByID[u.CCID] = got, got
		}
		out = append(out, toPerson(u, cc))
	}
	return v3OK(c, map[string]any{"objects": out})
}

// DNObject is a configuration DN. SIPPassword (for SIP digest) is given only
// to client tokens (services such as Voice), never to persons.
type DNObject struct {
	Number          string `json:"number"`
	Type            string `json:"type"`
	ContactCenterID string `json:"contactCenterId"`
	SIPDomain       string `json:"sipDomain"`
	UserName        string `json:"userName,omitempty"`
	PersonDBID      int64  `json:"personDbid,omitempty"`
	SIPPassword     string `json:"sipPassword,omitempty"`
}

func (s *Server) dns(c echo.Context) error {
	p := principal(c)
	cc, err, good := s.tenantFor(c, p)
	if !good {
		return err
	}
	ctx := c.Request().Context()
	dns, err := s.tenants.DNs(ctx, cc.ID)
	if err != nil {
		return s.storeError(c, "dns", err)
	}
	users, err := s.tenants.Users(ctx, cc.ID)
	if err != nil {
		return s.storeError(c, "dns", err)
	}
	owner := map[string]tenant.User{}
	for _, u := range users {
		if u.DN != "" {
			owner[u.DN] = u
		}
	}
	number := c.QueryParam("number")
	out := []DNObject{}
	for _, d := range dns {
		if number != "" && d.Number != number {
			continue
		}
		o := DNObject{Number: d.Number, Type: d.Type, ContactCenterID: string(cc.ID), SIPDomain: cc.SIPDomain}
		if u, found := owner[d.Number]; found {
			o.UserName, o.PersonDBID = u.UserName, int64(u.DBID)
		}
		if !p.IsUser() {
			o.SIPPassword = d.SIPPassword
		}
		out = append(out, o)
	}
	return v3OK(c, map[string]any{"objects": out})
}

// agentGroups serves ?person_dbid:int= (the GWS typed-filter syntax) or
// ?person_dbid=.
func (s *Server) agentGroups(c echo.Context) error {
	p := principal(c)
	cc, err, good := s.tenantFor(c, p)
	if !good {
		return err
	}
	ctx := c.Request().Context()
	filter := c.QueryParam("person_dbid:int")
	if filter == "" {
		filter = c.QueryParam("person_dbid")
	}
	member := ""
	if filter != "" {
		n, err := strconv.ParseInt(filter, 10, 64)
		if err != nil {
			return v3Error(c, http.StatusBadRequest, "person_dbid must be an integer")
		}
		u, err := s.tenants.UserByDBID(ctx, tenant.DBID(n))
		if err != nil || u.CCID != cc.ID {
			return v3OK(c, map[string]any{"objects": []any{}})
		}
		member = u.UserName
	}
	groups, err := s.tenants.AgentGroups(ctx, cc.ID)
	if err != nil {
		return s.storeError(c, "agent groups", err)
	}
	out := []map[string]any{}
	for _, g := range groups {
		if member != "" && !slices.Contains(g.Members, member) {
			continue
		}
		props := g.UserProperties
		if props == nil {
			props = map[string]map[string]string{}
		}
		out = append(out, map[string]any{"name": g.Name, "contactCenterId": g.CCID, "members": g.Members,
			"groupInfo": map[string]any{"name": g.Name, "userProperties": props}})
	}
	return v3OK(c, map[string]any{"objects": out})
}

// application serves the tenant's options flattened as "section.option".
func (s *Server) application(c echo.Context) error {
	cc, err, good := s.tenantFor(c, principal(c))
	if !good {
		return err
	}
	opts := map[string]string{}
	for sec, kv := range cc.Options {
		for k, v := range kv {
			opts[sec+"."+k] = v
		}
	}
	return v3OK(c, map[string]any{"options": opts})
}

func (s *Server) callbackServices(c echo.Context) error {
	cc, err, good := s.tenantFor(c, principal(c))
	if !good {
		return err
	}
	svcs, err := s.tenants.CallbackServices(c.Request().Context(), cc.ID)
	if err != nil {
		return s.storeError(c, "callback services", err)
	}
	return v3OK(c, map[string]any{"services": svcs})
}

func (s *Server) callinGroups(c echo.Context) error {
	cc, err, good := s.tenantFor(c, principal(c))
	if !good {
		return err
	}
	groups, err := s.tenants.CallinGroups(c.Request().Context(), cc.ID)
	if err != nil {
		return s.storeError(c, "callin groups", err)
	}
	return v3OK(c, map[string]any{"groups": groups})
}

// ---- statistics ----

// StatisticRequest is one requested statistic.
type StatisticRequest struct {
	ObjectID   string `json:"objectId"`
	ObjectType string `json:"objectType"`
	Name       string `json:"name"`
}

// StatisticValue is one answered statistic.
type StatisticValue struct {
	Name       string  `json:"name"`
	ObjectID   string  `json:"objectId"`
	ObjectType string  `json:"objectType"`
	Timestamp  int64   `json:"timestamp"`
	Value      float64 `json:"value"`
}

// maxStatistics bounds one request.
const maxStatistics = 200

var statNames = map[string]func(QueueStats) float64{
	"CurrentReadyAgents":    func(q QueueStats) float64 { return float64(q.ReadyAgents) },
	"CurrentLoggedInAgents": func(q QueueStats) float64 { return float64(q.LoggedInAgents) },
	"CurrentBusyAgents":     func(q QueueStats) float64 { return float64(q.BusyAgents) },
	"CurrentWaitingCalls":   func(q QueueStats) float64 { return float64(q.WaitingCalls) },
	"AverageHandlingTime":   func(q QueueStats) float64 { return q.AverageHandlingTime },
	"ExpectedWaitTime":      func(q QueueStats) float64 { return q.ExpectedWaitTime },
}

func (s *Server) getStatisticEx(c echo.Context) error {
	cc, err, good := s.tenantFor(c, principal(c))
	if !good {
		return err
	}
	var body struct {
		Data struct {
			Statistics []StatisticRequest `json:"statistics"`
		} `json:"data"`
	}
	if done, err := decodeJSON(c, &body); !done {
		return err
	}
	reqs := body.Data.Statistics
	if len(reqs) == 0 {
		return v3Error(c, http.StatusBadRequest, "data.statistics must list at least one statistic")
	}
	if len(reqs) > maxStatistics {
		return v3Error(c, http.StatusBadRequest, fmt.Sprintf("at most %d statistics per request", maxStatistics))
	}
	for _, r := range reqs {
		if r.ObjectID == "" || r.Name == "" {
			return v3Error(c, http.StatusBadRequest, "every statistic needs objectId and name")
		}
		if !strings.EqualFold(r.ObjectType, "Queue") {
			return v3Error(c, http.StatusBadRequest, fmt.Sprintf("objectType %q not supported (Queue only)", r.ObjectType))
		}
		if statNames[r.Name] == nil {
			names := make([]string, 0, len(statNames))
			for n := range statNames {
				names = append(names, n)
			}
			sort.Strings(names)
			return v3Error(c, http.StatusBadRequest, fmt.Sprintf("unknown statistic %q (known: %s)", r.Name, strings.Join(names, ", ")))
		}
	}
	ctx := c.Request().Context()
	byQueue := map[string]QueueStats{}
	ts := s.clk.Now().UnixMilli()
	out := make([]StatisticValue, 0, len(reqs))
	for _, r := range reqs {
		q, found := byQueue[r.ObjectID]
		if !found {
			q, err = s.stats.QueueStats(ctx, cc.ID, r.ObjectID)
			if err != nil {
				s.log.Warn("live statistics unavailable", "queue", r.ObjectID, "err", err)
				return v3Error(c, http.StatusServiceUnavailable, "statistics unavailable: "+err.Error())
			}
			byQueue[r.ObjectID] = q
		}
		out = append(out, StatisticValue{Name: r.Name, ObjectID: r.ObjectID, ObjectType: "Queue", Timestamp: ts, Value: statNames[r.Name](q)})
	}
	return v3OK(c, map[string]any{"statistics": out})
}

// ---- legacy /api/v2 ----

func (s *Server) me(c echo.Context) error {
	p := principal(c)
	if !p.IsUser() {
		return v2Error(c, http.StatusForbidden, "Access denied: a user token is required")
	}
	u, err := s.tenants.UserByDBID(c.Request().Context(), tenant.DBID(p.DBID))
	if err != nil {
		if errors.Is(err, tenant.ErrNotFound) {
			return v2Error(c, http.StatusNotFound, "user not found")
		}
		return err
	}
	roles := make([]string, 0, len(u.Roles))
	for _, r := range u.Roles {
		roles = append(roles, "ROLE_"+strings.ToUpper(r))
	}
	id := strconv.FormatInt(int64(u.DBID), 10)
	return c.JSON(http.StatusOK, map[string]any{"statusCode": 0, "user": map[string]any{
		"id": id, "userName": u.UserName, "firstName": u.FirstName, "lastName": u.LastName, "roles": roles,
		"enabled": u.Enabled, "changePasswordOnFirstLogin": false,
		"uri":  strings.TrimRight(s.cfg.PublicURL(), "/") + "/api/v2/users/" + id,
		"path": "/users/" + id,
	}})
}

func (s *Server) settings(c echo.Context) error {
	p := principal(c)
	if p.CCID == "" {
		return v2Error(c, http.StatusForbidden, "Access denied: token of a contact center required")
	}
	cc, err := s.tenants.ContactCenter(c.Request().Context(), tenant.CCID(p.CCID))
	if err != nil {
		return v2Error(c, http.StatusNotFound, "contact center not found")
	}
	group := c.Param("group")
	kv, found := cc.Options[group]
	if !found {
		return v2Error(c, http.StatusNotFound, "settings group "+group+" not found")
	}
	return c.JSON(http.StatusOK, map[string]any{"statusCode": 0, "settings": kv})
}

func (s *Server) version(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{"statusCode": 0, "version": s.cfg.Version})
}

// decodeJSON reads a JSON body into v, writing the v3 error on failure.
func decodeJSON(c echo.Context, v any) (bool, error) {
	raw, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return false, v3Error(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit))
		}
		return false, v3Error(c, http.StatusBadRequest, "unreadable body")
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, v3Error(c, http.StatusBadRequest, "malformed JSON body")
	}
	return true, nil
}
