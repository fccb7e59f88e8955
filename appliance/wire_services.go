package appliance

import (
	"net/url"
)

// wireServices constructs the services (emulators, Engagement, Voice, TURN,
// gateway, console) in start order and registers their routes and endpoints.
func (a *Appliance) wireServices() ([]Component, error) {
	return nil, nil
}

func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "<unparseable DSN>"
	}
	return u.Redacted()
}
