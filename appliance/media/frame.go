package media

import "time"

const (
	// SampleRate is the rate of every PCM frame this package produces or consumes.
	SampleRate = 8000
	// FrameDuration is the packetisation interval used on both legs of a call.
	FrameDuration = 20 * time.Millisecond
	// FrameSamples is the number of 8 kHz samples in one 20 ms frame.
	FrameSamples = SampleRate / 50
	// G711ClockRate is the RTP clock of PCMU/PCMA.
	G711ClockRate = 8000
	// OpusClockRate is the RTP clock of Opus (RFC 7587), whatever its internal rate.
	OpusClockRate = 48000
	// G711TimestampStep is how far a G.711 RTP timestamp advances per 20 ms frame.
	G711TimestampStep = G711ClockRate / 50
	// OpusTimestampStep is how far an Opus RTP timestamp advances per 20 ms frame.
	OpusTimestampStep = OpusClockRate / 50
	// MaxOpusFrameSamples is the largest decoded Opus packet (120 ms) at 8 kHz.
	MaxOpusFrameSamples = SampleRate * 120 / 1000
	// MaxOpusPacket is a safe size for an encoded Opus packet buffer.
	MaxOpusPacket = 1500
)
