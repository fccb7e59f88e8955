package ui

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"
)

// assetPrefix is where the embedded scripts and the style sheet are served.
const assetPrefix = "/ui/static/"

//go:embed static
var staticFS embed.FS

// assetSet holds the embedded files with a content hash each; pages link
// "name?v=hash" so browsers may cache them for good.
type assetSet struct {
	files map[string][]byte
	hash  map[string]string
}

func loadAssets() (*assetSet, error) {
	a := &assetSet{files: map[string][]byte{}, hash: map[string]string{}}
	entries, err := fs.ReadDir(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("read embedded assets: %w", err)
	}
	for _, e := range entries {
		b, err := staticFS.ReadFile("static/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("read embedded asset %s: %w", e.Name(), err)
		}
		sum := sha256.Sum256(b)
		a.files[e.Name()] = b
		a.hash[e.Name()] = hex.EncodeToString(sum[:6])
	}
	return a, nil
}

// url is the versioned address of an asset.
func (a *assetSet) url(name string) string {
	return assetPrefix + name + "?v=" + a.hash[name]
}

// faviconSVG is the appliance's icon: a headset on the brand colour. Pages
// carry it inline (no request); /favicon.ico serves it to everything else a
// browser shows from this origin (JSON, the GAuth login page).
const faviconSVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">` +
	`<rect width="16" height="16" rx="3" fill="#0f766e"/>` +
	`<path d="M3 10V8a5 5 0 0 1 10 0v2h-2V8a3 3 0 0 0-6 0v2z" fill="#fff"/>` +
	`<rect x="2.5" y="9" width="3" height="4" rx="1" fill="#fff"/><rect x="10.5" y="9" width="3" height="4" rx="1" fill="#fff"/></svg>`

// faviconURL is faviconSVG as a data: URL for the pages' <link rel="icon">.
var faviconURL = templ.SafeURL("data:image/svg+xml," + url.PathEscape(faviconSVG))

func serveFavicon(c echo.Context) error {
	h := c.Response().Header()
	h.Set("Cache-Control", "public, max-age=86400")
	h.Set("X-Content-Type-Options", "nosniff")
	return c.Blob(http.StatusOK, "image/svg+xml", []byte(faviconSVG))
}

func (u *UI) serveAsset(c echo.Context) error {
	name := c.Param("name")
	b, ok := u.assets.files[name]
	if !ok {
		return echo.NewHTTPError(http.StatusNotFound, "no such asset")
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	h := c.Response().Header()
	h.Set("X-Content-Type-Options", "nosniff")
	if c.QueryParam("v") == u.assets.hash[name] {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	return c.Blob(http.StatusOK, ct, b)
}
