package actionapi

import (
	"log/slog"
	"testing"
	"time"
)

func TestDepsWithDefaults(t *testing.T) {
	d := Deps{}.WithDefaults()
	if d.Logger == nil || d.HTTP == nil || d.Now == nil {
		t.Fatalf("defaults left a service out: %+v", d)
	}
	given := Deps{Logger: slog.New(slog.DiscardHandler), HTTP: NewHTTP(nil), Now: func() time.Time { return time.Unix(1, 0) }}
	d = given.WithDefaults()
	if d.Logger != given.Logger || d.HTTP != given.HTTP || !d.Now().Equal(time.Unix(1, 0)) {
		t.Errorf("defaults replaced what the caller gave: %+v", d)
	}
}
