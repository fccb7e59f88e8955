package ui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"
)

// dtmfKeys is the dial pad in keypad order.
var dtmfKeys = []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"}

// dtmfID names a key in an element id.
func dtmfID(d string) string {
	switch d {
	case "*":
		return "star"
	case "#":
		return "hash"
	}
	return d
}

// render writes a component with status code.
func render(c echo.Context, code int, comp templ.Component) error {
	noStore(c)
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	c.Response().WriteHeader(code)
	return comp.Render(c.Request().Context(), c.Response())
}

func (u *UI) chrome(title, page string, scripts ...string) chrome {
	p := chrome{Title: title, Page: page, CSS: u.assets.url("app.css"), Version: u.cfg.Version,
		// The lab's time (moved with its clock), for pages that default a date.
		Data: templ.Attributes{"data-lab-now": strconv.FormatInt(u.clock.Now().UnixMilli(), 10)}}
	for _, s := range scripts {
		p.Scripts = append(p.Scripts, u.assets.url(s))
	}
	return p
}

func (u *UI) mountSoftphone(e *echo.Echo) {
	e.GET("/softphone", func(c echo.Context) error { return c.Redirect(http.StatusMovedPermanently, "/softphone/") })
	e.GET("/softphone/", u.softphone)
	e.POST("/softphone/token", u.softphoneToken)
}

func (u *UI) softphone(c echo.Context) error {
	p := u.chrome("Softphone", "softphone", "softphone.js")
	p.Data["data-client-id"] = u.cfg.ConsoleClientID
	p.Data["data-gateway"] = "/webrtc"
	p.Data["data-voice"] = "/voice/v1"
	return render(c, http.StatusOK, softphonePage(p))
}

// softphoneToken finishes the softphone's authorization-code flow. The browser
// holds the PKCE verifier and sends it with the code; the server adds the
// client secret, which never reaches the browser, and returns the token.
func (u *UI) softphoneToken(c echo.Context) error {
	noStore(c)
	if !sameOrigin(c) {
		return c.JSON(http.StatusForbidden, map[string]string{"error": "cross-origin request refused"})
	}
	var in struct {
		Code         string `json:"code"`
		CodeVerifier string `json:"code_verifier"`
		RedirectURI  string `json:"redirect_uri"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(c.Response(), c.Request().Body, 16<<10)).Decode(&in); err != nil ||
		in.Code == "" || in.CodeVerifier == "" {
		return c.JSON(http.StatusBadRequest, map[string]string{"error": "code and code_verifier are required"})
	}
	ru, err := url.Parse(in.RedirectURI)
	if err != nil || ru.Scheme+"://"+ru.Host != origin(c) || !strings.HasPrefix(ru.Path, "/softphone/") {
		return c.JSON(http.StatusBadRequest, map[string]string{"error": "redirect_uri must be this origin's /softphone/ page"})
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), 10e9)
	defer cancel()
	tr, err := u.exchangeCode(ctx, u.gauthBase(c), u.cfg.ConsoleClientID, u.cfg.ConsoleClientSecret, in.Code, in.CodeVerifier, in.RedirectURI)
	if err != nil {
		u.log.Info("softphone code exchange failed", "err", err)
		code := http.StatusBadGateway
		if errors.Is(err, errBadGrant) {
			code = http.StatusBadRequest
		}
		return c.JSON(code, map[string]string{"error": err.Error()})
	}
	return c.JSON(http.StatusOK, map[string]any{"access_token": tr.AccessToken, "token_type": tr.TokenType, "expires_in": tr.ExpiresIn})
}

// sameOrigin refuses browser requests sent from another site. Requests without
// Origin (curl, tests) pass: they carry no ambient browser credentials.
func sameOrigin(c echo.Context) bool {
	o := c.Request().Header.Get("Origin")
	return trustedHost(c.Request().Host) && (o == "" || o == origin(c))
}

// trustedHost refuses DNS rebinding: a page from a hostile name that resolves
// to this machine sends that name as Host. Controls answer only to an IP
// address or localhost (use the address, not a host name, for a lab on a LAN).
func trustedHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	host = strings.Trim(host, "[]")
	return host == "localhost" || net.ParseIP(host) != nil
}

func (u *UI) mountCustomer(e *echo.Echo) {
	e.GET("/customer", func(c echo.Context) error { return c.Redirect(http.StatusMovedPermanently, "/customer/") })
	e.GET("/customer/", u.customer)
}

func (u *UI) customer(c echo.Context) error {
	p := u.chrome("Customer", "customer", "customer.js")
	p.Data["data-api-key"] = u.cfg.APIKey
	services := []string{"CB_Support", "CB_Sales"}
	if !containsString(services, u.cfg.DefaultService) {
		services = append([]string{u.cfg.DefaultService}, services...)
	}
	return render(c, http.StatusOK, customerPage(p, services, u.cfg.DefaultService, u.cfg.DefaultPhone))
}

func containsString(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// sortedKeys returns a map's keys in order (stable rendering).
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// anyString renders a user-data value.
func anyString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return fmt.Sprint(x)
		}
		return string(b)
	}
}

func joinStrings(xs []string) string { return strings.Join(xs, ", ") }
