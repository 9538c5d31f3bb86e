package api

import "html/template"

// icons are drawn here, 24×24 strokes, so the page loads nothing from
// anywhere; each row of the card has one.
var icons = map[string]string{
	"location":      `<path d="M12 21s-7-6.2-7-11a7 7 0 0 1 14 0c0 4.8-7 11-7 11z"/><circle cx="12" cy="10" r="2.5"/>`,
	"coordinates":   `<circle cx="12" cy="12" r="7"/><circle cx="12" cy="12" r="1.5"/><path d="M12 2v4M12 18v4M2 12h4M18 12h4"/>`,
	"email":         `<rect x="3" y="5" width="18" height="14" rx="2"/><path d="M3.5 7l8.5 6 8.5-6"/>`,
	"phone":         `<path d="M5 4h4l2 5-2.5 1.5a11 11 0 0 0 5 5L15 13l5 2v4a2 2 0 0 1-2 2A16 16 0 0 1 3 6a2 2 0 0 1 2-2z"/>`,
	"first_seen":    `<path d="M5 21V4M5 4h12l-2.5 4L17 12H5"/>`,
	"last_seen":     `<circle cx="12" cy="12" r="9"/><path d="M12 7v5l3.5 2"/>`,
	"age":           `<path d="M6 3h12M6 21h12M7 3v3l5 6 5-6V3M7 21v-3l5-6 5 6v3"/>`,
	"birthday":      `<rect x="4" y="11" width="16" height="10" rx="1.5"/><path d="M4 15.5c2.7 1.6 5.3 1.6 8 0s5.3-1.6 8 0M12 11V7.5"/><path d="M12 3.5c1 1 1 2.2 0 2.8-1-.6-1-1.8 0-2.8z"/>`,
	"customer_type": `<path d="M12 3l2.7 5.6 6.1.9-4.4 4.3 1 6.1L12 17l-5.4 2.9 1-6.1-4.4-4.3 6.1-.9z"/>`,
	"customer_id":   `<rect x="3" y="5" width="18" height="14" rx="2"/><circle cx="9" cy="11" r="2"/><path d="M6 16c.8-1.6 5.2-1.6 6 0M14.5 10h4M14.5 14h3"/>`,
	"timezone":      `<circle cx="12" cy="12" r="9"/><path d="M3 12h18M12 3c3 3.5 3 14.5 0 18M12 3c-3 3.5-3 14.5 0 18"/>`,
	"app_launches":  `<rect x="7" y="2.5" width="10" height="19" rx="2"/><path d="M11 18h2"/>`,
	"web_visits":    `<rect x="3" y="4" width="18" height="12" rx="2"/><path d="M8 20h8M12 16v4"/>`,
	"anonymous_id":  `<circle cx="12" cy="8" r="4"/><path d="M4 21c1.5-4 4.5-6 8-6s6.5 2 8 6"/>`,
	"anonymous_ids": `<path d="M10 14a4 4 0 0 0 5.7 0l3-3a4 4 0 0 0-5.7-5.7l-1 1M14 10a4 4 0 0 0-5.7 0l-3 3a4 4 0 0 0 5.7 5.7l1-1"/>`,
	"trait":         `<path d="M3 3h8l10 10-8 8L3 11z"/><circle cx="7.5" cy="7.5" r="1.3"/>`,
}

// icon returns the inline SVG of a row key; custom traits share one.
func icon(key string) template.HTML {
	p, ok := icons[key]
	if !ok {
		p = icons["trait"]
	}
	// #nosec: the paths are the constants above, never request data.
	return template.HTML(`<svg class="icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false">` + p + `</svg>`)
}
