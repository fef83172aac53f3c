package redis

import (
	"context"
	"fmt"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// RouteLogs sends go-redis's own messages (dial failures during an outage,
// pool events) to log as warnings instead of the standard logger, so an
// operator sees them in the same structured stream. It is process-wide.
func RouteLogs(log zerolog.Logger) { goredis.SetLogger(zerologAdapter{log}) }

type zerologAdapter struct{ log zerolog.Logger }

func (a zerologAdapter) Printf(_ context.Context, format string, v ...any) {
	a.log.Warn().Str("component", "go-redis").Msg(fmt.Sprintf(format, v...))
}
