package media

import "errors"

var (
	// ErrShortBuffer means a caller-provided output buffer cannot hold the result.
	ErrShortBuffer = errors.New("media: output buffer too small")
	// ErrFrameSize means an input frame does not have the expected number of samples.
	ErrFrameSize = errors.New("media: wrong frame size")
	// ErrMalformed means a payload could not be parsed.
	ErrMalformed = errors.New("media: malformed payload")
	// ErrUnknownDigit means a character is not a DTMF key (0-9, *, #, A-D).
	ErrUnknownDigit = errors.New("media: not a DTMF digit")
)
