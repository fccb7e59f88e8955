package ges

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cxlab/cxlab/appliance/httpd"
	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
)

// Route paths of the Engagement API v3 (absolute; the appliance serves one origin).
const (
	pathV3           = "/engagement/v3"
	pathCreate       = "/engagement/v3/callbacks/create"
	pathCancel       = "/engagement/v3/callbacks/cancel"
	pathRetrieve     = "/engagement/v3/callbacks/retrieve"
	pathAvailability = "/engagement/v3/callbacks/availability/:service"
	pathQueueStatus  = "/engagement/v3/callbacks/queue-status/:queue"
	pathOpenFor      = "/engagement/v3/callbacks/open-for/:service"
	pathEWT          = "/engagement/v3/estimated-wait-time"
	pathEWTAlias     = "/engagement/v3/estimated-wait-time/virtual-queues/:vq"
	pathCallIn       = "/engagement/v3/call-in/requests/create"
	pathStatistics   = "/engagement/v3/statistics/operations/get-statistic-ex"
	pathOpenAPI      = "/engagement/v3/openapi.json"
	pathORSState     = "/engagement/internal/v1/callbacks/:id/state"
	pathCallInMatch  = "/engagement/internal/v1/call-in/match"
	// pathUnmatched labels the metrics of requests no v3 route serves.
	pathUnmatched = "/engagement/v3/*"
)

// handlerFunc is an API handler: it gets the caller's tenant and returns the
// envelope's data or an error.
type handlerFunc func(c echo.Context, tenant TenantID) (any, error)

// route is one endpoint Mount registers.
type route struct {
	method, path string
	h            echo.HandlerFunc
}

// routes lists every endpoint of the service, the v3 ones first.
func (s *Service) routes() []route {
	return []route{
		{http.MethodPost, pathCreate, s.public(pathCreate, s.handleCreate)},
		{http.MethodPost, pathCancel, s.public(pathCancel, s.handleCancel)},
		{http.MethodPost, pathRetrieve, s.public(pathRetrieve, s.handleRetrieve)},
		{http.MethodGet, pathAvailability, s.public(pathAvailability, s.handleAvailability)},
		{http.MethodGet, pathQueueStatus, s.public(pathQueueStatus, s.handleQueueStatus)},
		{http.MethodGet, pathOpenFor, s.public(pathOpenFor, s.handleOpenFor)},
		{http.MethodGet, pathEWT, s.public(pathEWT, s.handleEWT)},
		{http.MethodGet, pathEWTAlias, s.public(pathEWTAlias, s.handleEWTAlias)},
		{http.MethodPost, pathCallIn, s.public(pathCallIn, s.handleCallIn)},
		{http.MethodPost, pathStatistics, s.public(pathStatistics, s.handleStatistics)},
		{http.MethodGet, pathOpenAPI, func(c echo.Context) error { return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, openAPIDoc) }},
		{http.MethodPost, pathORSState, s.internal(pathORSState, s.handleORSState)},
		{http.MethodPost, pathCallInMatch, s.internal(pathCallInMatch, s.handleCallInMatch)},
	}
}

// Mount registers the Engagement API, the OpenAPI document and the internal ORS
// endpoints (state reports, call-in matching) on e. Unknown paths and methods
// under /engagement/v3 answer in the API's envelope; the echo instance's own
// error handler, shared with other components, keeps every other path.
func (s *Service) Mount(e *echo.Echo) {
	routes := s.routes()
	for _, r := range routes {
		e.Add(r.method, r.path, r.h)
	}
	unmatched := s.unmatched(e)
	e.RouteNotFound(pathV3, unmatched)
	e.RouteNotFound(pathV3+"/*", unmatched)
}

// unmatched answers a request under /engagement/v3 that no route serves: 405
// with Allow when a v3 route has its path for other methods (204 to OPTIONS),
// 404 otherwise. echo calls a RouteNotFound handler in both cases once one
// covers the path, so the 405 is decided here.
func (s *Service) unmatched(e *echo.Echo) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		corr := uuid.NewString()
		c.Response().Header().Set("X-Correlation-Id", corr)
		r := c.Request()
		var err error
		if allow := httpd.AllowedMethods(e, r.URL.Path); len(allow) > 0 {
			// As echo would: Allow lists OPTIONS too, and OPTIONS gets 204.
			c.Response().Header().Set(echo.HeaderAllow, strings.Join(append([]string{http.MethodOptions}, allow...), ", "))
			if r.Method == http.MethodOptions {
				return c.NoContent(http.StatusNoContent)
			}
			err = errorf(ErrMethodNotAllowed, "%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", "))
		} else {
			err = errorf(ErrNoSuchPath, "no Engagement API endpoint at %s %s", r.Method, r.URL.Path)
		}
		return s.respond(c, pathUnmatched, "", corr, start, nil, err)
	}
}

// trimPathParams drops one trailing slash from each path parameter: echo
// hands a route's last parameter the rest of the path, so ".../CB_Sales/"
// arrives as "CB_Sales/". A parameter left empty or spanning segments means
// the path names no endpoint.
func trimPathParams(c echo.Context) error {
	n := len(c.ParamNames())
	if n == 0 {
		return nil
	}
	vals := slices.Clone(c.ParamValues()[:n])
	for i, v := range vals {
		v = strings.TrimSuffix(v, "/")
		if v == "" || strings.Contains(v, "/") {
			r := c.Request()
			return errorf(ErrNoSuchPath, "no Engagement API endpoint at %s %s", r.Method, r.URL.Path)
		}
		vals[i] = v
	}
	c.SetParamValues(vals...)
	return nil
}

// public wraps a v3 handler: correlation id, path parameters, the empty-ccid
// rule, API key -> tenant, the envelope, and metrics.
func (s *Service) public(path string, h handlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		corr := uuid.NewString()
		c.Response().Header().Set("X-Correlation-Id", corr)
		var tenant TenantID
		data, err := func() (any, error) {
			if err := trimPathParams(c); err != nil {
				return nil, err
			}
			hdr := c.Request().Header
			if hdr.Get("ccid") != "" || hdr.Get("ContactCenterID") != "" {
				return nil, invalidf("the ccid and ContactCenterID headers must be empty on incoming requests; the API key selects the contact center")
			}
			key := hdr.Get("X-Api-Key")
			if key == "" {
				return nil, errorf(ErrUnauthorized, "the x-api-key header is required")
			}
			t, err := s.tenantFor(c.Request().Context(), key)
			if err != nil {
				return nil, err
			}
			tenant = t
			return h(c, t)
		}()
		return s.respond(c, path, tenant, corr, start, data, err)
	}
}

// respond writes the GES envelope and records metrics.
func (s *Service) respond(c echo.Context, path string, tenant TenantID, corr string, start time.Time, data any, err error) error {
	code := StatusOf(err)
	s.m.requests.WithLabelValues(path, string(tenant)).Inc()
	defer func() { s.m.duration.WithLabelValues(path).Observe(time.Since(start).Seconds()) }()
	if err == nil {
		return c.JSON(http.StatusOK, okEnvelope{Data: data, Status: envStatus{Code: 0, Message: "Successful", CorrID: corr}})
	}
	s.m.failed.WithLabelValues(path, strconv.Itoa(code), string(tenant)).Inc()
	msg := http.StatusText(code)
	var apiErr *Error
	if errors.As(err, &apiErr) {
		msg = apiErr.Message
	} else if errors.Is(err, context.Canceled) {
		msg = "request cancelled"
	}
	if code >= 500 {
		s.log.Error("engagement api", "path", path, "corrId", corr, "code", code, "err", err)
	}
	body := errEnvelope{Status: envStatus{Code: code, Message: msg, CorrID: corr}}
	if apiErr != nil && apiErr.Data != nil {
		body.Data = apiErr.Data
	}
	if code == http.StatusTooManyRequests && body.Data == nil {
		// The reference's 429 is {status, data:{slots}}: clients read data.slots.
		body.Data = map[string]any{"slots": map[string]string{}}
	}
	return c.JSON(code, body)
}

// okEnvelope and errEnvelope are the API's {status, data} envelope; data is
// always present (null when empty) on success and only when there is some on
// an error. Fields are in the order a map would have sorted them.
type okEnvelope struct {
	Data   any       `json:"data"`
	Status envStatus `json:"status"`
}

type errEnvelope struct {
	Data   any       `json:"data,omitempty"`
	Status envStatus `json:"status"`
}

type envStatus struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	CorrID  string `json:"corrId"`
}

// readObject reads a JSON object body under the size limit. Numbers stay json.Number.
func (s *Service) readObject(c echo.Context) (map[string]json.RawMessage, error) {
	r := c.Request()
	if r.ContentLength > s.cfg.BodyLimit {
		return nil, errorf(ErrTooLarge, "request body exceeds %d bytes", s.cfg.BodyLimit)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, s.cfg.BodyLimit+1))
	if err != nil {
		return nil, invalidf("request body could not be read")
	}
	if int64(len(body)) > s.cfg.BodyLimit {
		return nil, errorf(ErrTooLarge, "request body exceeds %d bytes", s.cfg.BodyLimit)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, invalidf("a JSON object body is required")
	}
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")) // a UTF-8 byte-order mark, as Node's parser allows
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, invalidf("the body must be a JSON object, not a JSON %s", te.Value)
		}
		return nil, invalidf("malformed JSON body: %v", strings.TrimPrefix(err.Error(), "json: "))
	}
	if m == nil {
		return nil, invalidf("the body must be a JSON object")
	}
	return m, nil
}

// fields reads typed fields of a JSON object, remembering the first error, which
// names the field. JSON null counts as absent.
type fields struct {
	m   map[string]json.RawMessage
	err error
}

func (f *fields) raw(name string) (json.RawMessage, bool) {
	v, ok := f.m[name]
	if !ok || string(v) == "null" {
		return nil, false
	}
	return v, true
}

func (f *fields) fail(format string, args ...any) {
	if f.err == nil {
		f.err = invalidf(format, args...)
	}
}

// str reads a string field.
func (f *fields) str(name string) string {
	v, ok := f.raw(name)
	if !ok {
		return ""
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		f.fail("%s must be a string", name)
	}
	if strings.ContainsRune(s, 0) {
		f.fail("%s must not contain NUL characters", name)
		return ""
	}
	return s
}

// num reads a number field; numeric strings are accepted too.
func (f *fields) num(name string) (float64, bool) {
	v, ok := f.raw(name)
	if !ok {
		return 0, false
	}
	var n float64
	if err := json.Unmarshal(v, &n); err == nil {
		return n, true
	}
	var s string
	if err := json.Unmarshal(v, &s); err == nil {
		if n, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil {
			return n, true
		}
	}
	f.fail("%s must be a number", name)
	return 0, false
}

// boolean reads a boolean field ("true"/"false" strings accepted).
func (f *fields) boolean(name string) bool {
	v, ok := f.raw(name)
	if !ok {
		return false
	}
	var b bool
	if err := json.Unmarshal(v, &b); err == nil {
		return b
	}
	var s string
	if err := json.Unmarshal(v, &s); err == nil {
		if b, err := strconv.ParseBool(s); err == nil {
			return b
		}
	}
	f.fail("%s must be a boolean", name)
	return false
}

// object reads an object field.
func (f *fields) object(name string) map[string]any {
	v, ok := f.raw(name)
	if !ok {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(v, &m); err != nil || m == nil {
		f.fail("%s must be a JSON object", name)
		return nil
	}
	if path, bad := findNUL(m, name); bad {
		f.fail("%s must not contain NUL characters", path)
		return nil
	}
	return m
}

// findNUL finds a string holding NUL (U+0000) in a decoded JSON value, keys
// included, and names where it is. PostgreSQL stores neither text nor jsonb
// with NUL, so such a value is refused at the edge rather than failing the
// group commit it would share with other clients' callbacks.
func findNUL(v any, path string) (string, bool) {
	switch v := v.(type) {
	case string:
		return path, strings.ContainsRune(v, 0)
	case map[string]any:
		for k, e := range v {
			if strings.ContainsRune(k, 0) {
				return path, true
			}
			if p, bad := findNUL(e, path+"."+k); bad {
				return p, true
			}
		}
	case []any:
		for i, e := range v {
			if p, bad := findNUL(e, fmt.Sprintf("%s[%d]", path, i)); bad {
				return p, true
			}
		}
	}
	return "", false
}

// pathParam is a path parameter, percent-decoded. Echo routes on the raw
// path when the request's encoding is not Go's own (CB%5FSales, lowercase
// hex), and then hands the parameter over still encoded; otherwise it is
// decoded already.
func pathParam(c echo.Context, name string) string {
	v := c.Param(name)
	if c.Request().URL.RawPath == "" {
		return v
	}
	if d, err := url.PathUnescape(v); err == nil {
		return d
	}
	return v
}

// timeLayouts are the ISO-8601 forms accepted for date-times; without a zone the
// time is read in the given location (UTC unless a timezone parameter says otherwise).
var timeLayouts = []string{
	time.RFC3339Nano, "2006-01-02T15:04:05.000Z0700", "2006-01-02T15:04:05Z0700", "2006-01-02T15:04Z07:00",
}

var localLayouts = []string{"2006-01-02T15:04:05.999999999", "2006-01-02T15:04", "2006-01-02"}

// parseISO parses an ISO-8601 date-time.
func parseISO(v string, loc *time.Location) (time.Time, bool) {
	v = strings.TrimSpace(v)
	if len(v) > 10 && (v[10] == 't' || strings.HasSuffix(v, "z")) { // RFC 3339 allows either case
		v = strings.ToUpper(v)
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, v); err == nil {
			return t, true
		}
	}
	for _, l := range localLayouts {
		if t, err := time.ParseInLocation(l, v, loc); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// createExtras are the optional create fields kept as given (strings unless noted).
var createExtras = []string{"inboundVQ", "channel", "offerTiming", "cbOriginationIxnId", "surveyRP", "routePoint"}

func (s *Service) handleCreate(c echo.Context, tenant TenantID) (any, error) {
	m, err := s.readObject(c)
	if err != nil {
		return nil, err
	}
	f := &fields{m: m}
	req := CreateRequest{
		ServiceName: f.str("serviceName"),
		PhoneNumber: f.str("phoneNumber"),
		OfferType:   f.str("cbOfferType"),
		Language:    f.str("language"),
		UserData:    f.object("userData"),
	}
	if v := f.str("desiredTime"); v != "" && f.err == nil {
		t, ok := parseISO(v, time.UTC)
		if !ok {
			return nil, invalidf("desiredTime must be an ISO-8601 date-time such as 2026-05-28T15:30:00.000Z")
		}
		req.DesiredTime = &t
	}
	if p, ok := f.num("priority"); ok {
		req.Priority = p
	}
	req.AlwaysCheckCapacity = f.boolean("alwaysCheckCapacity")
	extra := map[string]any{}
	for _, k := range createExtras {
		if v := f.str(k); v != "" {
			extra[k] = v
		}
	}
	if v, ok := f.num("offerThreshold"); ok {
		extra["offerThreshold"] = v
	}
	if v, ok := f.raw("pushTargets"); ok {
		var pt []any
		if err := json.Unmarshal(v, &pt); err != nil {
			f.fail("pushTargets must be an array")
		}
		for i, t := range pt { // reference §2.1: [{channel: "FCM", target: "<token>"}]
			o, ok := t.(map[string]any)
			channel, _ := o["channel"].(string)
			target, _ := o["target"].(string)
			if !ok || channel == "" || target == "" {
				f.fail("pushTargets[%d] must be an object with string channel and target", i)
				break
			}
		}
		extra["pushTargets"] = pt
	}
	if v := f.str("captchaToken"); v != "" {
		extra["captchaToken"] = v
	}
	if v, ok := extra["offerTiming"].(string); ok && v != "ON-HOURS" && v != "OFF-HOURS" {
		f.fail("offerTiming must be ON-HOURS or OFF-HOURS")
	}
	if f.err != nil {
		return nil, f.err
	}
	if len(extra) > 0 {
		req.Extra = extra
	}
	id, err := s.Create(c.Request().Context(), tenant, req)
	if err != nil {
		return nil, err
	}
	return map[string]any{"id": string(id)}, nil
}

// readID reads the {"id": "..."} body of cancel and retrieve.
func (s *Service) readID(c echo.Context) (CallbackID, error) {
	m, err := s.readObject(c)
	if err != nil {
		return "", err
	}
	f := &fields{m: m}
	id := f.str("id")
	if f.err != nil {
		return "", f.err
	}
	if id == "" {
		return "", invalidf("id is required")
	}
	return canonicalID(CallbackID(id)), nil
}

func (s *Service) handleCancel(c echo.Context, tenant TenantID) (any, error) {
	id, err := s.readID(c)
	if err != nil {
		return nil, err
	}
	if err := s.Cancel(c.Request().Context(), tenant, id, ReasonCancelled); err != nil {
		return nil, err
	}
	return map[string]any{"id": string(id)}, nil
}

func (s *Service) handleRetrieve(c echo.Context, tenant TenantID) (any, error) {
	id, err := s.readID(c)
	if err != nil {
		return nil, err
	}
	cb, err := s.Retrieve(c.Request().Context(), tenant, id)
	if err != nil {
		return nil, err
	}
	return cb.apiView(), nil
}

// query returns the first non-empty query parameter among spellings.
func query(c echo.Context, names ...string) string {
	for _, n := range names {
		if v := c.QueryParam(n); v != "" {
			return v
		}
	}
	return ""
}

// queryInt parses an integer query parameter (any spelling), naming it on error.
func queryInt(c echo.Context, names ...string) (int64, bool, error) {
	v := query(c, names...)
	if v == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, false, invalidf("%s must be an integer", names[0])
	}
	return n, true, nil
}

// queryLocation reads the timezone parameter (default UTC).
func queryLocation(c echo.Context) (*time.Location, error) {
	tz := query(c, "timezone", "time-zone", "timeZone")
	if tz == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, invalidf("timezone %q is not an IANA time zone", tz)
	}
	return loc, nil
}

// queryTime reads an ISO date-time parameter, or its epoch-ms twin.
func queryTime(c echo.Context, loc *time.Location, iso string, ms ...string) (time.Time, bool, error) {
	v := query(c, iso)
	n, hasMS, err := queryInt(c, ms...)
	if err != nil {
		return time.Time{}, false, err
	}
	switch {
	case v != "" && hasMS:
		return time.Time{}, false, invalidf("use either %s or %s, not both", iso, ms[0])
	case hasMS:
		return time.UnixMilli(n), true, nil
	case v != "":
		t, ok := parseISO(v, loc)
		if !ok {
			return time.Time{}, false, invalidf("%s must be an ISO-8601 date-time", iso)
		}
		return t, true, nil
	}
	return time.Time{}, false, nil
}

func (s *Service) handleAvailability(c echo.Context, tenant TenantID) (any, error) {
	loc, err := queryLocation(c)
	if err != nil {
		return nil, err
	}
	start, hasStart, err := queryTime(c, loc, "start", "startMS", "start-ms", "startMs")
	if err != nil {
		return nil, err
	}
	if !hasStart {
		start = s.clock.Now()
	}
	end, hasEnd, err := queryTime(c, loc, "end", "endMS", "end-ms", "endMs")
	if err != nil {
		return nil, err
	}
	days, hasDays, err := queryInt(c, "numberOfDays", "number-of-days")
	if err != nil {
		return nil, err
	}
	switch {
	case hasEnd && hasDays:
		return nil, invalidf("use only one of end, endMS and numberOfDays")
	case hasDays:
		if days < 1 || days > 31 {
			return nil, invalidf("numberOfDays must be between 1 and 31")
		}
		end = start.Add(time.Duration(days) * 24 * time.Hour)
	case !hasEnd:
		// The spec says end = start; a day is what a caller asking "from start" means.
		end = start.Add(24 * time.Hour)
	}
	maxSlots, _, err := queryInt(c, "maxTimeSlots", "max-time-slots")
	if err != nil {
		return nil, err
	}
	if maxSlots < 0 {
		return nil, invalidf("maxTimeSlots must not be negative")
	}
	busy := false
	if v := query(c, "reportBusy", "report-busy"); v != "" {
		if busy, err = strconv.ParseBool(v); err != nil {
			return nil, invalidf("reportBusy must be true or false")
		}
	}
	return s.Availability(c.Request().Context(), tenant, pathParam(c, "service"), AvailabilityQuery{
		Start: start, End: end, Location: loc, MaxTimeSlots: int(maxSlots), ReportBusy: busy})
}

func (s *Service) handleQueueStatus(c echo.Context, tenant TenantID) (any, error) {
	return s.QueueStatus(c.Request().Context(), tenant, pathParam(c, "queue"))
}

func (s *Service) handleOpenFor(c echo.Context, tenant TenantID) (any, error) {
	loc, err := queryLocation(c)
	if err != nil {
		return nil, err
	}
	at, ok, err := queryTime(c, loc, "start")
	if err != nil {
		return nil, err
	}
	if !ok {
		at = s.clock.Now()
	}
	d, err := s.OpenFor(c.Request().Context(), tenant, pathParam(c, "service"), at)
	if err != nil {
		return nil, err
	}
	return map[string]any{"openFor": int64(d / time.Second)}, nil
}

// parseMode reads the EWT mode: mode1|mode2|mode3 or 1|2|3 (default mode2).
func parseMode(v string) (int, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "":
		return 2, nil
	case "mode1", "1":
		return 1, nil
	case "mode2", "2":
		return 2, nil
	case "mode3", "3":
		return 3, nil
	}
	return 0, invalidf("mode must be mode1, mode2 or mode3")
}

// maxEWTQueues caps the virtual queues of one estimated-wait-time request:
// each costs statistics and a count of waiting callbacks.
const maxEWTQueues = 100

// ewtOptions reads the query parameters both EWT routes share: mode, and
// include-calls-on-hold (checked, then ignored: GES's estimate has no held calls).
func ewtOptions(c echo.Context) (int, error) {
	mode, err := parseMode(c.QueryParam("mode"))
	if err != nil {
		return 0, err
	}
	switch v := c.QueryParam("include-calls-on-hold"); {
	case v == "", strings.EqualFold(v, "true"), strings.EqualFold(v, "false"):
	default:
		return 0, invalidf("include-calls-on-hold must be true or false")
	}
	return mode, nil
}

func (s *Service) handleEWT(c echo.Context, tenant TenantID) (any, error) {
	list := query(c, "virtual-queues", "virtualQueues")
	var names []string
	for _, vq := range strings.Split(list, ",") {
		if vq = strings.TrimSpace(vq); vq != "" {
			names = append(names, vq)
		}
	}
	if len(names) == 0 {
		return nil, invalidf("virtual-queues is required (comma-separated virtual queue names)")
	}
	if len(names) > maxEWTQueues {
		return nil, invalidf("virtual-queues names %d queues; at most %d per request", len(names), maxEWTQueues)
	}
	mode, err := ewtOptions(c)
	if err != nil {
		return nil, err
	}
	tc, err := s.config(c.Request().Context(), tenant)
	if err != nil {
		return nil, err
	}
	vqs := make([]string, len(names))
	for i, n := range names {
		vqs[i] = tc.queueOf(n)
	}
	stats := s.queueStatsMany(c.Request().Context(), tenant, vqs)
	out := make([]EWTResult, len(names))
	for i, n := range names {
		out[i] = estimateFrom(stats[vqs[i]], mode)
		out[i].VirtualQueue = n
	}
	return out, nil
}

func (s *Service) handleEWTAlias(c echo.Context, tenant TenantID) (any, error) {
	mode, err := ewtOptions(c)
	if err != nil {
		return nil, err
	}
	tc, err := s.config(c.Request().Context(), tenant)
	if err != nil {
		return nil, err
	}
	vq := pathParam(c, "vq")
	r := s.estimate(c.Request().Context(), tenant, tc.queueOf(vq), mode)
	r.VirtualQueue = vq
	return r, nil
}

func (s *Service) handleCallIn(c echo.Context, tenant TenantID) (any, error) {
	m, err := s.readObject(c)
	if err != nil {
		return nil, err
	}
	f := &fields{m: m}
	p := CallInParams{
		GroupName:         f.str("groupName"),
		FromPhoneNumber:   f.str("fromPhoneNumber"),
		CallbackServiceID: f.str("callbackServiceId"),
		UserData:          f.object("userData"),
	}
	if p.FromPhoneNumber == "" {
		p.FromPhoneNumber = f.str("phoneNumber") // older samples' spelling
	}
	if f.err != nil {
		return nil, f.err
	}
	r, err := s.CreateCallIn(c.Request().Context(), tenant, p)
	if err != nil {
		return nil, err
	}
	return r.apiView(), nil
}

// statistics proxy cache bounds (reference §2.9).
const (
	statsMinMaxAge = 15 * time.Second
	statsMaxAge    = 5 * time.Minute
)

// maxAge reads cache-control: max-age=N, clamped to [15 s, 5 min]; absent means 5 min.
func maxAge(h string) time.Duration {
	for _, part := range strings.Split(h, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || !strings.EqualFold(k, "max-age") {
			continue
		}
		n, err := strconv.Atoi(strings.Trim(v, `" `))
		if err != nil {
			break
		}
		return min(max(time.Duration(n)*time.Second, statsMinMaxAge), statsMaxAge)
	}
	return statsMaxAge
}

func (s *Service) handleStatistics(c echo.Context, tenant TenantID) (any, error) {
	m, err := s.readObject(c)
	if err != nil {
		return nil, err
	}
	src := m["data"]
	if len(src) == 0 {
		src, _ = json.Marshal(m)
	}
	var body struct {
		Statistics []StatisticRequest `json:"statistics"`
	}
	if err := json.Unmarshal(src, &body); err != nil || len(body.Statistics) == 0 {
		return nil, invalidf("data.statistics must be a non-empty array of {objectId, objectType, name}")
	}
	for i, r := range body.Statistics {
		if r.ObjectID == "" || r.Name == "" {
			return nil, invalidf("data.statistics[%d] needs objectId and name", i)
		}
		if !strings.EqualFold(r.ObjectType, statObjectQueue) {
			return nil, invalidf("data.statistics[%d].objectType %q is not supported (Queue only: statistics are kept per virtual queue)", i, r.ObjectType)
		}
	}
	key, _ := json.Marshal(body.Statistics)
	ck := string(tenant) + "|" + string(key)
	if v, age, ok := s.proxy.get(ck); ok && age < maxAge(c.Request().Header.Get("Cache-Control")) {
		return map[string]any{"statistics": v}, nil
	}
	vals, err := s.platform.Statistics(c.Request().Context(), tenant, body.Statistics)
	if errors.Is(err, ErrInvalid) {
		return nil, err // the statistics service's reason: the caller's mistake
	}
	if err != nil {
		s.log.Warn("statistics proxy", "err", err)
		return nil, errorf(ErrUnavailable, "statistics are unavailable now (statistics service unreachable)")
	}
	s.proxy.put(ck, vals, statsMaxAge)
	return map[string]any{"statistics": vals}, nil
}
