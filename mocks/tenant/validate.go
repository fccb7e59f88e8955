package tenant

import (
	"fmt"
	"regexp"
	"time"

	"github.com/google/uuid"
)

var (
	weekdays  = map[string]bool{"mon": true, "tue": true, "wed": true, "thu": true, "fri": true, "sat": true, "sun": true}
	hhmm      = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$`)
	dateRegex = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
)

func validUUID(s string) bool {
	_, err := uuid.Parse(s)
	return err == nil && len(s) == 36
}

func validateCC(cc ContactCenter) error {
	if !validUUID(string(cc.ID)) {
		return fmt.Errorf("contact center id %q is not a UUID: %w", cc.ID, ErrInvalid)
	}
	if cc.Name == "" || cc.SIPDomain == "" || cc.EnvironmentID == "" {
		return fmt.Errorf("contact center %s: name, sipDomain and environmentId required: %w", cc.ID, ErrInvalid)
	}
	return nil
}

func validateCBS(c CallbackService) error {
	bad := func(why string) error {
		return fmt.Errorf("callback service %q: %s: %w", c.Name, why, ErrInvalid)
	}
	switch {
	case c.Name == "" || c.VirtualQueue == "":
		return bad("name and virtualQueue required")
	case c.SlotDurationMin <= 0 || c.CapacityPerSlot <= 0:
		return bad("slotDurationMin and capacityPerSlot must be positive")
	case c.MaxDialAttempts <= 0 || c.RetryDelaySec < 0:
		return bad("maxDialAttempts must be positive and retryDelaySec not negative")
	}
	if _, err := time.LoadLocation(c.TimeZone); err != nil || c.TimeZone == "" {
		return bad(fmt.Sprintf("unknown timeZone %q", c.TimeZone))
	}
	for day, ivs := range c.BusinessHours.Weekly {
		if !weekdays[day] {
			return bad(fmt.Sprintf("unknown weekday %q (want mon..sun)", day))
		}
		for _, iv := range ivs {
			if !hhmm.MatchString(iv.Open) || !hhmm.MatchString(iv.Close) || iv.Open >= iv.Close {
				return bad(fmt.Sprintf("bad interval %s-%s on %s", iv.Open, iv.Close, day))
			}
		}
	}
	for _, h := range c.BusinessHours.Holidays {
		if _, err := time.Parse(time.DateOnly, h); err != nil || !dateRegex.MatchString(h) {
			return bad(fmt.Sprintf("bad holiday %q (want YYYY-MM-DD)", h))
		}
	}
	return nil
}
