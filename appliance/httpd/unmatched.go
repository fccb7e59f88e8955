package httpd

import (
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
)

// Unmatched makes requests under prefix that no route serves answer in a
// component's own error format: 405 with Allow when e has a route for the
// path under other methods (OPTIONS gets 204), 404 otherwise. write renders
// the status and message. echo calls a RouteNotFound handler in both cases
// once one covers the path; without one, both get echo's generic JSON.
func Unmatched(e *echo.Echo, prefix string, write func(c echo.Context, status int, msg string) error) {
	h := func(c echo.Context) error {
		r := c.Request()
		allow := AllowedMethods(e, r.URL.Path)
		if len(allow) == 0 {
			return write(c, http.StatusNotFound, "no endpoint at "+r.Method+" "+r.URL.Path)
		}
		c.Response().Header().Set(echo.HeaderAllow, strings.Join(append([]string{http.MethodOptions}, allow...), ", "))
		if r.Method == http.MethodOptions {
			return c.NoContent(http.StatusNoContent)
		}
		return write(c, http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path+" (allowed: "+strings.Join(allow, ", ")+")")
	}
	e.RouteNotFound(prefix, h)
	e.RouteNotFound(prefix+"/*", h)
}

// AllowedMethods lists, sorted, the methods e has a route for at path
// (RouteNotFound handlers aside).
func AllowedMethods(e *echo.Echo, path string) []string {
	var allow []string
	for _, rt := range e.Routes() {
		if rt.Method == echo.RouteNotFound || slices.Contains(allow, rt.Method) || !MatchPath(rt.Path, path) {
			continue
		}
		allow = append(allow, rt.Method)
	}
	slices.Sort(allow)
	return allow
}

// MatchPath reports whether path matches an echo route pattern whose :name
// segments stand for one non-empty segment each (no * routes: echo answers
// their wrong methods itself).
func MatchPath(pattern, path string) bool {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(xs) {
		return false
	}
	for i, p := range ps {
		if strings.HasPrefix(p, ":") {
			if xs[i] == "" {
				return false
			}
		} else if p != xs[i] {
			return false
		}
	}
	return true
}
