package ges

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ListQuery selects callbacks for the /ges/ UI list, search and export.
type ListQuery struct {
	Tenant TenantID
	// From and To bound the desired time (zero: unbounded).
	From, To time.Time
	// States and Services filter (empty: all).
	States   []State
	Services []string
	// Search matches a callback id prefix or a phone-number substring.
	Search string
	// Reason filters on the completion reason.
	Reason string
	// SortBy is id, state, desiredTime (default), phoneNumber, serviceName, createdAt or updatedAt.
	SortBy string
	Desc   bool
	// Page is 1-based; PageSize defaults to 250 (the real UI's page).
	Page, PageSize int
}

// ListPage is one page of callbacks.
type ListPage struct {
	Items    []*Callback
	Total    int
	Page     int
	PageSize int
	Pages    int
}

// sortColumns maps UI sort keys to columns (a whitelist: never interpolate input).
var sortColumns = map[string]string{
	"id": "id", "state": "state", "desiredTime": "desired_time", "phoneNumber": "phone_number",
	"serviceName": "service", "createdAt": "created_at", "updatedAt": "updated_at",
}

// where builds the filter clause and its arguments.
func (q ListQuery) where() (string, []any) {
	conds := []string{"tenant = $1"}
	args := []any{string(q.Tenant)}
	add := func(cond string, v any) {
		args = append(args, v)
		conds = append(conds, strings.ReplaceAll(cond, "$?", "$"+strconv.Itoa(len(args))))
	}
	if !q.From.IsZero() {
		add("desired_time >= $?", q.From)
	}
	if !q.To.IsZero() {
		add("desired_time < $?", q.To)
	}
	if len(q.States) > 0 {
		st := make([]string, len(q.States))
		for i, s := range q.States {
			st[i] = string(s)
		}
		add("state = ANY($?)", st)
	}
	if len(q.Services) > 0 {
		add("service = ANY($?)", q.Services)
	}
	if q.Reason != "" {
		add("reason = $?", q.Reason)
	}
	if s := strings.TrimSpace(q.Search); s != "" {
		phone := phoneSearch(s)
		args = append(args, strings.ToLower(likeEscape(s))+"%", "%"+likeEscape(phone)+"%")
		conds = append(conds, fmt.Sprintf("(id::text LIKE $%d OR phone_number LIKE $%d)", len(args)-1, len(args)))
	}
	return strings.Join(conds, " AND "), args
}

// phoneSearch is the part of a search to match phone numbers with: a number
// typed as people write it ("+1 (202) 555-0103", "202.555.0103") is matched
// by its digits (and leading +), as numbers are stored in E.164; anything
// else is matched as typed.
func phoneSearch(s string) string {
	digits := 0
	var b strings.Builder
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
			b.WriteRune(r)
		case r == '+' && i == 0:
			b.WriteRune(r)
		case r == ' ' || r == '(' || r == ')' || r == '-' || r == '.':
		default:
			return s
		}
	}
	if digits == 0 {
		return s
	}
	return b.String()
}

// List returns one page of the tenant's callbacks.
func (s *Service) List(ctx context.Context, q ListQuery) (ListPage, error) {
	if q.PageSize <= 0 || q.PageSize > 1000 {
		q.PageSize = 250
	}
	if q.Page <= 0 {
		q.Page = 1
	}
	where, args := q.where()
	var total int
	if err := s.st.pool.QueryRow(ctx, `SELECT count(*) FROM ges.callbacks WHERE `+where, args...).Scan(&total); err != nil {
		return ListPage{}, fmt.Errorf("list callbacks: %w", err)
	}
	// A page past the last (a stale link after cancellations, or a number
	// typed into the URL) shows the last page.
	pages := (total + q.PageSize - 1) / q.PageSize
	q.Page = min(q.Page, max(pages, 1))
	order := sortColumns[q.SortBy]
	if order == "" {
		order = "desired_time"
	}
	dir := "ASC"
	if q.Desc {
		dir = "DESC"
	}
	args = append(args, q.PageSize, (q.Page-1)*q.PageSize)
	rows, err := s.st.pool.Query(ctx, fmt.Sprintf(`SELECT %s FROM ges.callbacks WHERE %s ORDER BY %s %s, id LIMIT $%d OFFSET $%d`,
		callbackCols, where, order, dir, len(args)-1, len(args)), args...)
	if err != nil {
		return ListPage{}, fmt.Errorf("list callbacks: %w", err)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Callback, error) { return scanCallback(r) })
	if err != nil {
		return ListPage{}, fmt.Errorf("list callbacks: %w", err)
	}
	s.overlayLive(ctx, items...)
	return ListPage{Items: items, Total: total, Page: q.Page, PageSize: q.PageSize, Pages: pages}, nil
}

// Get returns one callback with its full record (UI details view).
func (s *Service) Get(ctx context.Context, tenant TenantID, id CallbackID) (*Callback, error) {
	return s.Retrieve(ctx, tenant, id)
}

// CancelByAdmin cancels callbacks from the UI (reason CANCELLED_BY_ADMIN). It
// returns the error of each id that could not be cancelled (PROCESSING, unknown, ...).
func (s *Service) CancelByAdmin(ctx context.Context, tenant TenantID, ids ...CallbackID) map[CallbackID]error {
	failed := map[CallbackID]error{}
	for _, id := range ids {
		if err := s.Cancel(ctx, tenant, id, ReasonCancelledByAdmin); err != nil {
			failed[id] = err
		}
	}
	return failed
}

// Recreate books a new callback for the number, service, priority, language and
// user data of an existing one (UI recreate); desired nil means immediate.
func (s *Service) Recreate(ctx context.Context, tenant TenantID, id CallbackID, desired *time.Time) (CallbackID, error) {
	old, err := s.Retrieve(ctx, tenant, id)
	if err != nil {
		return "", err
	}
	if old.State != StateCompleted { // it would be a second callback to the same customer
		return "", invalidf("callback %s is %s; only a COMPLETED callback can be recreated", id, old.State)
	}
	return s.Create(ctx, tenant, CreateRequest{ServiceName: old.Service, PhoneNumber: old.PhoneNumber, DesiredTime: desired,
		Priority: old.Priority, Language: old.Language, UserData: old.UserData, Extra: old.Extra, AlwaysCheckCapacity: true})
}

// csvHeader is the export's column list.
var csvHeader = []string{"id", "state", "reason", "desiredTime", "phoneNumber", "serviceName", "virtualQueue",
	"offerType", "priority", "dialAttempts", "agentDn", "createdAt", "updatedAt"}

// ExportCSV writes every callback matching q (all pages) as CSV. User data is
// not exported.
func (s *Service) ExportCSV(ctx context.Context, q ListQuery, w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	q.PageSize, q.Page = 1000, 1
	for {
		page, err := s.List(ctx, q)
		if err != nil {
			return err
		}
		for _, c := range page.Items {
			if err := cw.Write([]string{string(c.ID), string(c.State), c.Reason, formatTime(c.DesiredTime), csvSafe(c.PhoneNumber),
				c.Service, c.VirtualQueue, c.OfferType, strconv.FormatFloat(c.Priority, 'f', -1, 64),
				strconv.Itoa(c.DialAttempts), c.AgentDN, formatTime(c.CreatedAt), formatTime(c.UpdatedAt)}); err != nil {
				return fmt.Errorf("export: %w", err)
			}
		}
		if q.Page >= page.Pages {
			break
		}
		q.Page++
	}
	cw.Flush()
	return cw.Error()
}

// csvSafe keeps spreadsheet programs from reading a cell as a formula; E.164's
// leading '+' would otherwise be one.
func csvSafe(v string) string {
	if v != "" && strings.ContainsRune("=+-@", rune(v[0])) {
		return "'" + v
	}
	return v
}
