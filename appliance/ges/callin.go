package ges

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// CallInRequest is a Click-to-Call-In request.
type CallInRequest struct {
	ID                CallbackID     `json:"id"`
	Tenant            TenantID       `json:"-"`
	GroupName         string         `json:"groupName"`
	ToPhoneNumber     string         `json:"toPhoneNumber"`
	FromPhoneNumber   string         `json:"fromPhoneNumber,omitempty"`
	AccessCode        string         `json:"-"`
	CallbackServiceID string         `json:"callbackServiceId,omitempty"`
	UserData          map[string]any `json:"-"`
	CreatedAt         time.Time      `json:"-"`
	ExpiresAt         time.Time      `json:"-"`
	// State is CallInPending, CallInMatched or (a pending request past its expiry) CallInExpired.
	State CallInState `json:"-"`
	// MatchedAt is when Voice matched a caller to the request (zero until then).
	MatchedAt time.Time `json:"-"`
	// MatchedANI is the number the matched caller called from.
	MatchedANI string `json:"-"`
}

// CallInState is the life-cycle state of a call-in request.
type CallInState string

// Call-in request states.
const (
	// CallInPending: waiting for the customer to call the access number.
	CallInPending CallInState = "PENDING"
	// CallInMatched: a caller was matched to it; a request matches once.
	CallInMatched CallInState = "MATCHED"
	// CallInExpired: its expiration time passed unmatched (derived, never stored).
	CallInExpired CallInState = "EXPIRED"
)

// CallInMatch is what Voice asks GES to match: the number the caller dialled,
// the digits keyed (empty when the group has no access code) and the caller's number.
type CallInMatch struct {
	AccessNumber string `json:"accessNumber"`
	AccessCode   string `json:"accessCode"`
	ANI          string `json:"ani"`
}

// CallInMatchResult is the matched request as Voice needs it to route the call.
type CallInMatchResult struct {
	ID                CallbackID     `json:"id"`
	GroupName         string         `json:"groupName"`
	ContactCenterID   TenantID       `json:"contactCenterId"`
	FromPhoneNumber   string         `json:"fromPhoneNumber,omitempty"`
	CallbackServiceID string         `json:"callbackServiceId,omitempty"`
	VirtualQueue      string         `json:"virtualQueue,omitempty"`
	UserData          map[string]any `json:"userData,omitempty"`
}

// apiView is the wire form: expirationTime in epoch ms, accessCode a number and
// only when the group uses access codes.
func (r *CallInRequest) apiView() map[string]any {
	v := map[string]any{"id": string(r.ID), "toPhoneNumber": r.ToPhoneNumber, "groupName": r.GroupName,
		"expirationTime": r.ExpiresAt.UnixMilli()}
	if r.AccessCode != "" {
		n, _ := strconv.Atoi(r.AccessCode)
		v["accessCode"] = n
	}
	if r.FromPhoneNumber != "" {
		v["fromPhoneNumber"] = r.FromPhoneNumber
	}
	if r.CallbackServiceID != "" {
		v["callbackServiceId"] = r.CallbackServiceID
	}
	return v
}

// CallInParams are the create fields of a call-in request.
type CallInParams struct {
	GroupName       string
	FromPhoneNumber string
	// CallbackServiceID is a callback id to associate; a UUID is stored in canonical lower-case form.
	CallbackServiceID string
	UserData          map[string]any
}

// CreateCallIn registers a Click-to-Call-In request: the customer dials the
// group's access number before expiry (and keys the access code when enabled).
func (s *Service) CreateCallIn(ctx context.Context, tenant TenantID, p CallInParams) (*CallInRequest, error) {
	if p.GroupName == "" {
		return nil, invalidf("groupName is required")
	}
	if p.FromPhoneNumber != "" {
		if err := checkPhone("fromPhoneNumber", p.FromPhoneNumber); err != nil {
			return nil, err
		}
	}
	tc, err := s.config(ctx, tenant)
	if err != nil {
		return nil, err
	}
	g, ok := tc.groups[p.GroupName]
	if !ok {
		return nil, invalidf("unknown groupName %q", p.GroupName)
	}
	now := s.clock.Now()
	expiry := time.Duration(g.ExpirySec) * time.Second
	if expiry <= 0 {
		expiry = 10 * time.Minute
	}
	r := &CallInRequest{ID: CallbackID(uuid.NewString()), Tenant: tenant, State: CallInPending, GroupName: g.Name, ToPhoneNumber: g.AccessNumber,
		FromPhoneNumber: p.FromPhoneNumber, CallbackServiceID: string(canonicalID(CallbackID(p.CallbackServiceID))), UserData: filterUserData(p.UserData),
		CreatedAt: now, ExpiresAt: now.Add(expiry)}
	if g.AccessCodeEnabled {
		if r.AccessCode, err = s.newAccessCode(ctx, g.AccessNumber, now); err != nil {
			return nil, err
		}
	}
	ud, err := jsonOrNil(r.UserData)
	if err != nil {
		return nil, fmt.Errorf("call-in user data: %w", err)
	}
	var udV any
	if ud != nil {
		udV = json.RawMessage(ud)
	}
	if _, err := s.st.pool.Exec(ctx, `INSERT INTO ges.callin_requests (id, tenant, group_name, to_phone_number,
		from_phone_number, access_code, callback_service_id, user_data, created_at, expires_at)
		VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, uuidArg(string(r.ID)), string(tenant), r.GroupName, r.ToPhoneNumber,
		r.FromPhoneNumber, r.AccessCode, r.CallbackServiceID, udV, r.CreatedAt, r.ExpiresAt); err != nil {
		s.log.Error("store call-in request", "err", err)
		return nil, errorf(ErrUnavailable, "call-in request could not be stored")
	}
	s.m.callin.WithLabelValues(string(tenant)).Inc()
	return r, nil
}

// newAccessCode draws a 4-digit code that no live request of the access number
// uses, so that the digits a caller keys identify one request. (Two concurrent
// creates may still draw the same code; matching then takes the newer one.)
func (s *Service) newAccessCode(ctx context.Context, accessNumber string, now time.Time) (string, error) {
	var code string
	for range 20 {
		n, err := rand.Int(rand.Reader, big.NewInt(9000))
		if err != nil {
			return "", fmt.Errorf("access code: %w", err)
		}
		code = strconv.FormatInt(1000+n.Int64(), 10)
		var taken bool
		if err := s.st.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM ges.callin_requests WHERE to_phone_number = $1
			AND state = 'PENDING' AND expires_at > $2 AND access_code = $3)`, accessNumber, now, code).Scan(&taken); err != nil {
			s.log.Error("check access code", "err", err)
			return "", errorf(ErrUnavailable, "call-in request could not be stored")
		}
		if !taken {
			break
		}
	}
	return code, nil
}

// MatchCallIn finds the live request a caller of accessNumber belongs to and
// marks it MATCHED, atomically, so a request matches once even when two Voice
// nodes ask together. A request matches when it is PENDING, not expired, and
// its access code equals the digits keyed or, for a group without access
// codes, its fromPhoneNumber equals the caller's number. ErrNotFound otherwise.
func (s *Service) MatchCallIn(ctx context.Context, m CallInMatch) (*CallInMatchResult, error) {
	m.AccessNumber, m.AccessCode, m.ANI = strings.TrimSpace(m.AccessNumber), strings.TrimSpace(m.AccessCode), strings.TrimSpace(m.ANI)
	if m.AccessNumber == "" {
		return nil, invalidf("accessNumber is required")
	}
	if m.AccessCode == "" && m.ANI == "" {
		return nil, invalidf("accessCode or ani is required")
	}
	now := s.clock.Now()
	r := &CallInMatchResult{}
	var tenant string
	var ud []byte
	err := s.st.pool.QueryRow(ctx, `UPDATE ges.callin_requests SET state = 'MATCHED', matched_at = $4, matched_ani = $3
		WHERE id = (SELECT id FROM ges.callin_requests
			WHERE to_phone_number = $1 AND state = 'PENDING' AND expires_at > $4
			AND ((access_code <> '' AND access_code = $2)
				OR (access_code = '' AND $2 = '' AND from_phone_number <> '' AND from_phone_number = $3))
			ORDER BY created_at DESC LIMIT 1 FOR UPDATE SKIP LOCKED)
		AND state = 'PENDING'
		RETURNING id::text, tenant, group_name, from_phone_number, callback_service_id, user_data`,
		m.AccessNumber, m.AccessCode, m.ANI, now).Scan(&r.ID, &tenant, &r.GroupName, &r.FromPhoneNumber,
		&r.CallbackServiceID, &ud)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errorf(ErrNotFound, "no live call-in request matches")
	}
	if err != nil {
		s.log.Error("match call-in request", "err", err)
		return nil, errorf(ErrUnavailable, "call-in requests cannot be read now")
	}
	r.ContactCenterID = TenantID(tenant)
	if len(ud) > 0 {
		if err := json.Unmarshal(ud, &r.UserData); err != nil {
			s.log.Warn("call-in user data", "err", err, "id", r.ID)
		}
	}
	// The queue is advisory (Voice knows its groups too): a configuration
	// outage must not undo a match already made.
	if tc, err := s.config(ctx, r.ContactCenterID); err == nil {
		r.VirtualQueue = tc.groups[r.GroupName].VirtualQueue
	}
	s.m.callinMatched.WithLabelValues(tenant).Inc()
	s.log.Info("call-in request matched", "id", r.ID, "tenant", tenant, "group", r.GroupName)
	return r, nil
}

// ListCallIns returns the tenant's call-in requests, newest first, optionally
// matching search against the id (in any case) or ANI (UI Call-In tab).
func (s *Service) ListCallIns(ctx context.Context, tenant TenantID, search string, limit int) ([]*CallInRequest, error) {
	if limit <= 0 || limit > 1000 {
		limit = 250
	}
	now := s.clock.Now()
	rows, err := s.st.pool.Query(ctx, `SELECT id::text, group_name, to_phone_number, from_phone_number, access_code,
		callback_service_id, created_at, expires_at, state, matched_at, matched_ani FROM ges.callin_requests
		WHERE tenant = $1 AND ($2 = '' OR id::text LIKE lower($3) OR from_phone_number LIKE $3)
		ORDER BY created_at DESC LIMIT $4`, string(tenant), search, "%"+likeEscape(search)+"%", limit)
	if err != nil {
		return nil, fmt.Errorf("list call-in requests: %w", err)
	}
	defer rows.Close()
	var out []*CallInRequest
	for rows.Next() {
		r := &CallInRequest{Tenant: tenant}
		var matchedAt *time.Time
		if err := rows.Scan(&r.ID, &r.GroupName, &r.ToPhoneNumber, &r.FromPhoneNumber, &r.AccessCode,
			&r.CallbackServiceID, &r.CreatedAt, &r.ExpiresAt, &r.State, &matchedAt, &r.MatchedANI); err != nil {
			return nil, fmt.Errorf("list call-in requests: %w", err)
		}
		if matchedAt != nil {
			r.MatchedAt = *matchedAt
		}
		if r.State == CallInPending && !now.Before(r.ExpiresAt) {
			r.State = CallInExpired
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
