package httpd

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"
)

func TestUnmatchedAnswersInTheComponentsShape(t *testing.T) {
	e := echo.New()
	ok := func(c echo.Context) error { return c.NoContent(http.StatusOK) }
	e.GET("/x/items/:id", ok)
	e.DELETE("/x/items/:id", ok)
	e.GET("/other", ok)
	Unmatched(e, "/x", func(c echo.Context, status int, msg string) error {
		return c.String(status, "X-ERROR "+msg)
	})
	for _, tc := range []struct {
		method, path string
		status       int
		allow, body  string
	}{
		{http.MethodGet, "/x/items/7", 200, "", ""},
		{http.MethodPut, "/x/items/7", 405, "OPTIONS, DELETE, GET", "X-ERROR PUT is not allowed on /x/items/7 (allowed: DELETE, GET)"},
		{http.MethodOptions, "/x/items/7", 204, "OPTIONS, DELETE, GET", ""},
		{http.MethodGet, "/x/items", 404, "", "X-ERROR no endpoint at GET /x/items"},
		{http.MethodGet, "/x", 404, "", "X-ERROR no endpoint at GET /x"},
		// Outside the prefix, echo's own answers stay.
		{http.MethodPost, "/other", 405, "OPTIONS, GET", "{\"message\":\"Method Not Allowed\"}\n"},
	} {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if rec.Code != tc.status || rec.Header().Get("Allow") != tc.allow || rec.Body.String() != tc.body {
			t.Errorf("%s %s: %d Allow %q %q, want %d Allow %q %q", tc.method, tc.path, rec.Code, rec.Header().Get("Allow"), rec.Body.String(), tc.status, tc.allow, tc.body)
		}
	}
}
