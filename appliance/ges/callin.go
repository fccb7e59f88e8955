package ges

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"time"

	"github.com/google/uuid"
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
	GroupName         string
	FromPhoneNumber   string
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
	r := &CallInRequest{ID: CallbackID(uuid.NewString()), Tenant: tenant, GroupName: g.Name, ToPhoneNumber: g.AccessNumber,
		FromPhoneNumber: p.FromPhoneNumber, CallbackServiceID: p.CallbackServiceID, UserData: filterUserData(p.UserData),
		CreatedAt: now, ExpiresAt: now.Add(expiry)}
	if g.AccessCodeEnabled {
		n, err := rand.Int(rand.Reader, big.NewInt(9000))
		if err != nil {
			return nil, fmt.Errorf("access code: %w", err)
		}
		r.AccessCode = strconv.FormatInt(1000+n.Int64(), 10)
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
		VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, string(r.ID), string(tenant), r.GroupName, r.ToPhoneNumber,
		r.FromPhoneNumber, r.AccessCode, r.CallbackServiceID, udV, r.CreatedAt, r.ExpiresAt); err != nil {
		s.log.Error("store call-in request", "err", err)
		return nil, errorf(ErrUnavailable, "call-in request could not be stored")
	}
	s.m.callin.WithLabelValues(string(tenant)).Inc()
	return r, nil
}

// ListCallIns returns the tenant's call-in requests, newest first, optionally
// matching search against the id or ANI (UI Call-In tab).
func (s *Service) ListCallIns(ctx context.Context, tenant TenantID, search string, limit int) ([]*CallInRequest, error) {
	if limit <= 0 || limit > 1000 {
		limit = 250
	}
	rows, err := s.st.pool.Query(ctx, `SELECT id::text, group_name, to_phone_number, from_phone_number, access_code,
		callback_service_id, created_at, expires_at FROM ges.callin_requests
		WHERE tenant = $1 AND ($2 = '' OR id::text LIKE $3 OR from_phone_number LIKE $3)
		ORDER BY created_at DESC LIMIT $4`, string(tenant), search, "%"+likeEscape(search)+"%", limit)
	if err != nil {
		return nil, fmt.Errorf("list call-in requests: %w", err)
	}
	defer rows.Close()
	var out []*CallInRequest
	for rows.Next() {
		r := &CallInRequest{Tenant: tenant}
		if err := rows.Scan(&r.ID, &r.GroupName, &r.ToPhoneNumber, &r.FromPhoneNumber, &r.AccessCode,
			&r.CallbackServiceID, &r.CreatedAt, &r.ExpiresAt); err != nil {
			return nil, fmt.Errorf("list call-in requests: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
