package event

import "regexp"

var sourceName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// ValidSource reports whether name can be a source: 1-64 letters, digits,
// '_', '.' or '-', starting with a letter or digit. Source names become
// URL paths and metric labels, so they are kept plain.
func ValidSource(name string) bool { return sourceName.MatchString(name) }
