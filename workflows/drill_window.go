package workflows

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// BlockedWindow is a weekly time range, in UTC, in which a drill does not
// start (it completes as skipped, saying which window). Written as
//
//	DAY HH:MM-HH:MM
//
// where DAY is Mon, Tue, Wed, Thu, Fri, Sat, Sun (any case, or the full
// name) or "daily". The window starts at the first time and ends before
// the second; "24:00" is the end of the day. An end at or before the start
// runs past midnight into the next day: "Fri 22:00-02:00" is Friday 22:00
// to Saturday 02:00. E.g. "Sat 00:00-06:00", "daily 08:00-18:00".
type BlockedWindow struct {
	// Day is the weekday the window starts on; Daily: every day.
	Day   time.Weekday
	Daily bool
	// Start and End are minutes after midnight (End up to 24*60).
	Start, End int
}

const minutesPerDay = 24 * 60

// ParseBlockedWindow reads a window written as "DAY HH:MM-HH:MM" (see
// BlockedWindow); its error says what to write.
func ParseBlockedWindow(s string) (BlockedWindow, error) {
	const form = `write DAY HH:MM-HH:MM in UTC, e.g. "Sat 00:00-06:00" or "daily 22:00-02:00"`
	fields := strings.Fields(s)
	if len(fields) != 2 {
		return BlockedWindow{}, fmt.Errorf("blocked window %q: %s", s, form)
	}
	var w BlockedWindow
	day := strings.ToLower(fields[0])
	switch {
	case day == "daily":
		w.Daily = true
	default:
		found := false
		for d := time.Sunday; d <= time.Saturday; d++ {
			name := strings.ToLower(d.String())
			if day == name || day == name[:3] {
				w.Day, found = d, true
			}
		}
		if !found {
			return BlockedWindow{}, fmt.Errorf("blocked window %q: day %q is not Mon, Tue, Wed, Thu, Fri, Sat, Sun or daily; %s",
				s, fields[0], form)
		}
	}
	from, to, ok := strings.Cut(fields[1], "-")
	if !ok {
		return BlockedWindow{}, fmt.Errorf("blocked window %q: %s", s, form)
	}
	var err error
	if w.Start, err = clockMinutes(from, false); err != nil {
		return BlockedWindow{}, fmt.Errorf("blocked window %q: %v; %s", s, err, form)
	}
	if w.End, err = clockMinutes(to, true); err != nil {
		return BlockedWindow{}, fmt.Errorf("blocked window %q: %v; %s", s, err, form)
	}
	if w.Start == w.End {
		return BlockedWindow{}, fmt.Errorf("blocked window %q: it starts where it ends; for a whole day write 00:00-24:00", s)
	}
	return w, nil
}

// clockMinutes reads HH:MM as minutes after midnight; 24:00 only as an end.
func clockMinutes(s string, end bool) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	switch {
	case !ok || len(h) != 2 || len(m) != 2 || err1 != nil || err2 != nil:
		return 0, fmt.Errorf("time %q is not HH:MM", s)
	case end && hh == 24 && mm == 0:
		return minutesPerDay, nil
	case hh < 0 || hh > 23 || mm < 0 || mm > 59:
		return 0, fmt.Errorf("time %q is not a time of day (00:00 to 23:59, or 24:00 as an end)", s)
	}
	return hh*60 + mm, nil
}

// Contains reports whether t (taken in UTC) is inside the window.
func (w BlockedWindow) Contains(t time.Time) bool {
	t = t.UTC()
	m := t.Hour()*60 + t.Minute()
	on := func(d time.Weekday) bool { return w.Daily || w.Day == d }
	if w.Start < w.End {
		return on(t.Weekday()) && m >= w.Start && m < w.End
	}
	// Past midnight: from Start on its day, until End on the next.
	yesterday := (t.Weekday() + 6) % 7
	return on(t.Weekday()) && m >= w.Start || on(yesterday) && m < w.End
}

// String writes the window as ParseBlockedWindow reads it.
func (w BlockedWindow) String() string {
	day := "daily"
	if !w.Daily {
		day = w.Day.String()[:3]
	}
	return fmt.Sprintf("%s %02d:%02d-%02d:%02d", day, w.Start/60, w.Start%60, w.End/60, w.End%60)
}

// ParseBlockedWindows reads every window of a drill request.
func ParseBlockedWindows(ss []string) ([]BlockedWindow, error) {
	out := make([]BlockedWindow, 0, len(ss))
	for _, s := range ss {
		w, err := ParseBlockedWindow(s)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}
