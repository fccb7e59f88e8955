package turn

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/pion/logging"
)

// LevelTrace is the slog level pion's Trace messages are logged at; it sits
// below Debug so that a Debug-level handler does not drown in per-packet lines.
const LevelTrace = slog.LevelDebug - 4

// NewPionLoggerFactory returns a pion logging.LoggerFactory that writes every
// pion scope into logger, tagged with a "scope" attribute. The gateway reuses it
// for pion/webrtc so that all pion output lands in the appliance's one log.
func NewPionLoggerFactory(logger *slog.Logger) logging.LoggerFactory {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return pionLoggerFactory{logger: logger}
}

type pionLoggerFactory struct {
	logger *slog.Logger
}

// NewLogger implements logging.LoggerFactory.
func (f pionLoggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{logger: f.logger.With("scope", scope)}
}

// pionLogger adapts pion's printf-style leveled logger to slog. Formatting is
// skipped when the level is disabled, because pion logs on hot paths.
type pionLogger struct {
	logger *slog.Logger
}

func (l pionLogger) log(level slog.Level, msg string) {
	l.logger.Log(context.Background(), level, msg)
}

func (l pionLogger) logf(level slog.Level, format string, args ...any) {
	if !l.logger.Enabled(context.Background(), level) {
		return
	}
	l.logger.Log(context.Background(), level, fmt.Sprintf(format, args...))
}

func (l pionLogger) Trace(msg string)                  { l.log(LevelTrace, msg) }
func (l pionLogger) Tracef(format string, args ...any) { l.logf(LevelTrace, format, args...) }
func (l pionLogger) Debug(msg string)                  { l.log(slog.LevelDebug, msg) }
func (l pionLogger) Debugf(format string, args ...any) { l.logf(slog.LevelDebug, format, args...) }
func (l pionLogger) Info(msg string)                   { l.log(slog.LevelInfo, msg) }
func (l pionLogger) Infof(format string, args ...any) {
	if perPacket(format) {
		l.logf(slog.LevelDebug, format, args...)
		return
	}
	l.logf(slog.LevelInfo, format, args...)
}
func (l pionLogger) Warn(msg string) { l.log(warnLevel(msg), msg) }
func (l pionLogger) Warnf(format string, args ...any) {
	if l.logger.Enabled(context.Background(), slog.LevelWarn) { // else nor Debug, below it
		l.Warn(fmt.Sprintf(format, args...))
	}
}
func (l pionLogger) Error(msg string) { l.log(slog.LevelError, msg) }
func (l pionLogger) Errorf(format string, args ...any) {
	if strings.HasPrefix(format, expiredBindMark) {
		l.logf(slog.LevelDebug, format, args...)
		return
	}
	l.logf(slog.LevelError, format, args...)
}

// expiredBindMark begins pion/turn's error when a channel binding's timer
// fires after its allocation is already gone (deleted or expired first):
// nothing failed, and on the console it read as an error per expiry.
const expiredBindMark = "Failed to remove ChannelBind"

// perPacketMarks begin pion's informational messages about single packets,
// such as a datagram to a relayed address from a peer without permission:
// anyone who can send packets could write one line each to the log, so they
// are logged at Debug.
var perPacketMarks = []string{"No Permission or Channel exists"}

func perPacket(format string) bool {
	for _, m := range perPacketMarks {
		if strings.HasPrefix(format, m) {
			return true
		}
	}
	return false
}

// closedMarks are the error texts of an I/O call on something already closed
// (net.ErrClosed, io.ErrClosedPipe, pion/srtp's closed session).
// A call hung up while its PeerConnection is still connecting ends the same
// way: "Failed to start manager: connecting canceled by caller",
// "undeclaredMediaProcessor failed to open SrtcpSession".
// repeatedMarks are warnings pion repeats on a timer while a state lasts:
// ICE warns at every ping (every 200 ms) while a connection has no candidate
// pair, 400 lines and more for one browser whose ICE never connects; the
// gateway logs the ICE failure itself, once.
var repeatedMarks = []string{"Failed to ping without candidate pairs"}

var closedMarks = []string{"use of closed network connection", "read/write on closed pipe", "already closed",
	"connecting canceled by caller", "failed to open SrtcpSession", "failed to open SrtpSession"}

// warnLevel is the level of a pion warning. pion warns when a read or
// accept loop ends on a closed connection, stream or pipe, which is how
// every PeerConnection and allocation ends: "Failed to accept RTP stream is
// already closed", "Failed to read from candidate ...: io: read/write on
// closed pipe". On a lab that ends calls all day those would fill the
// console with warnings about nothing, so they are logged at Debug.
func warnLevel(msg string) slog.Level {
	for _, m := range append(closedMarks, repeatedMarks...) {
		if strings.Contains(msg, m) {
			return slog.LevelDebug
		}
	}
	return slog.LevelWarn
}

var (
	_ logging.LoggerFactory = pionLoggerFactory{}
	_ logging.LeveledLogger = pionLogger{}
)
