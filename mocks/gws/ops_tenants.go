package gws

import (
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/cxlab/cxlab/mocks/tenant"
)

// The tenant admin API of this emulator (an addition: the real platform edits
// tenants through Agent Setup and Designer). Guarded by the ops credentials.
//
//	POST   /configuration/v3/ops/seed                                  apply a seed document (YAML or JSON, the --seed format); idempotent
//	DELETE /configuration/v3/ops/contact-centers/{ccid}/users/{name}   remove a user
func (s *Server) mountTenantOps(e *echo.Echo, mw ...echo.MiddlewareFunc) {
	e.POST("/configuration/v3/ops/seed", s.applySeed, mw...)
	e.DELETE("/configuration/v3/ops/contact-centers/:ccid/users/:name", s.deleteUser, mw...)
}

func (s *Server) applySeed(c echo.Context) error {
	// YAML is a superset of JSON, so one parser takes both; unknown keys are errors.
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return v3Error(c, http.StatusRequestEntityTooLarge, "seed document too large")
		}
		return v3Error(c, http.StatusBadRequest, "read body: "+err.Error())
	}
	seed, err := tenant.ParseSeed(strings.NewReader(string(body)))
	if err != nil {
		return v3Error(c, http.StatusBadRequest, err.Error())
	}
	if err := s.tenants.Apply(c.Request().Context(), seed); err != nil {
		if errors.Is(err, tenant.ErrInvalid) || errors.Is(err, tenant.ErrConflict) {
			return v3Error(c, http.StatusBadRequest, err.Error())
		}
		return v3Error(c, http.StatusInternalServerError, "apply seed: "+err.Error())
	}
	return v3OK(c, map[string]int{"contactCenters": len(seed.ContactCenters)})
}

func (s *Server) deleteUser(c echo.Context) error {
	if err := s.tenants.DeleteUser(c.Request().Context(), tenant.CCID(c.Param("ccid")), c.Param("name")); err != nil {
		return s.storeError(c, "delete user", err)
	}
	return v3OK(c, map[string]string{"deleted": c.Param("name")})
}
