package profile

import (
	"fmt"
	"time"
)

// Kind classifies a record.
type Kind uint8

// The kinds of record. Only app launches and web visits move first/last seen
// and count; identify events only set fields; an alias only links an
// anonymous id to a user (contract section 2a).
const (
	KindIgnored Kind = iota
	KindAppLaunch
	KindWebVisit
	KindIdentify
	KindAlias
)

// Kinds lists every kind that is applied, for metric initialisation.
var Kinds = []Kind{KindAppLaunch, KindWebVisit, KindIdentify, KindAlias}

// String returns the contract's name of the kind.
func (k Kind) String() string {
	switch k {
	case KindAppLaunch:
		return "app_launch"
	case KindWebVisit:
		return "web_visit"
	case KindIdentify:
		return "identify"
	case KindAlias:
		return "alias"
	default:
		return "ignored"
	}
}

// Channel returns "app" for launches, "web" for visits and "" otherwise.
func (k Kind) Channel() string {
	switch k {
	case KindAppLaunch:
		return ChannelApp
	case KindWebVisit:
		return ChannelWeb
	default:
		return ""
	}
}

// Channels of first_seen_channel and last_seen_channel.
const (
	ChannelApp = "app"
	ChannelWeb = "web"
)

// Skip reasons: records that are consumed and committed without any effect.
const (
	SkipTombstone      = "tombstone"
	SkipNotLaunchEvent = "not_launch_event"
	SkipUnhandledType  = "unhandled_type"
)

// SkipReasons lists every skip reason, for metric initialisation.
var SkipReasons = []string{SkipTombstone, SkipNotLaunchEvent, SkipUnhandledType}

// Rejection reasons: records that go to the dead-letter topic.
const (
	ReasonInvalidJSON         = "invalid_json"
	ReasonTooLarge            = "too_large"
	ReasonMissingIdentity     = "missing_identity"
	ReasonBadTimestamp        = "bad_timestamp"
	ReasonTimestampOutOfRange = "timestamp_out_of_range"
)

// RejectReasons lists every rejection reason, for metric initialisation.
var RejectReasons = []string{ReasonInvalidJSON, ReasonTooLarge, ReasonMissingIdentity, ReasonBadTimestamp, ReasonTimestampOutOfRange}

// Rejection is the error Decode returns for a record that must be
// dead-lettered. Detail names the rule that failed and never carries a
// personal value.
type Rejection struct {
	Reason string
	Detail string
}

// Error implements error.
func (r *Rejection) Error() string { return r.Reason + ": " + r.Detail }

func reject(reason, format string, args ...any) *Rejection {
	return &Rejection{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Field is one normalised profile field as it is stored.
type Field struct {
	Name  string
	Value string
}

// Drop records a field that failed its rule and was dropped alone.
type Drop struct {
	Field  string // contract field name; custom traits are all "trait"
	Reason string
}

// Event is a decoded record that the decoder accepted.
type Event struct {
	Kind       Kind
	SkipReason string // set when Kind is KindIgnored
	ProfileID  string
	// LinkAnonID is the usable anonymous id (without the "anon:" prefix)
	// that this event links to the user ProfileID (contract section 2a):
	// the anonymousId of a launch, visit or identify that carries a usable
	// userId too, or the previousId of an alias. Empty when the event
	// links nothing.
	LinkAnonID string
	Time       int64 // event time, Unix milliseconds
	MessageID  string
	Fields     []Field // none for an alias
	Dropped    []Drop
}

// Profile field names (section 4 and 5 of the contract).
const (
	FieldCustomerID       = "customer_id"
	FieldAnonymousID      = "anonymous_id"
	FieldEmail            = "email"
	FieldPhone            = "phone"
	FieldBirthday         = "birthday"
	FieldCustomerType     = "customer_type"
	FieldCity             = "city"
	FieldCountry          = "country"
	FieldLatitude         = "latitude"
	FieldLongitude        = "longitude"
	FieldTimezone         = "timezone"
	FieldFirstSeen        = "first_seen"
	FieldFirstSeenChannel = "first_seen_channel"
	FieldLastSeen         = "last_seen"
	FieldLastSeenChannel  = "last_seen_channel"
	FieldAppLaunches      = "app_launches"
	FieldWebVisits        = "web_visits"
	FieldCreatedAt        = "created_at"
	FieldUpdatedAt        = "updated_at"

	// TraitPrefix starts the hash field of every custom trait.
	TraitPrefix = "trait."

	// FieldCoordinates is the merge's name for the latitude/longitude pair:
	// the two are one last-writer-wins value, "<lat>,<lon>", so a profile
	// never shows the latitude of one event beside the longitude of another.
	// The sink stores it as the latitude and longitude hash fields.
	FieldCoordinates = "coordinates"
)

// FormatTime renders Unix milliseconds as the contract's time format,
// RFC 3339 in UTC with exactly three fractional digits.
func FormatTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}
