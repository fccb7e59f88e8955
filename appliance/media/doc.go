// Package media is CX Lab's audio plumbing: the codecs, DSP and RTP helpers
// shared by the WebRTC gateway (browser Opus over SRTP <-> plain RTP G.711
// toward SIP) and by the Voice emulator's simulated customers.
//
// Everything here is pure Go (the binary is built with CGO_ENABLED=0) and
// works on 20 ms frames of 8 kHz mono int16 audio, the narrowband rate both
// legs of a contact-center call share:
//
//   - G.711 PCMU/PCMA encode and decode ([EncodeG711], [DecodeG711]) and
//     law-to-law pass-through ([TranscodeG711]).
//   - Opus via github.com/thesyncim/gopus run at 8 kHz internally, so no
//     resampler is needed; the RTP clock of the Opus leg stays 48000, which is
//     why its timestamps advance [OpusTimestampStep] per frame.
//   - [Transcoder]: one call's Opus <-> G.711 pair, allocation-free, with
//     packet-loss concealment.
//   - RFC 4733 telephone-events ([TelephoneEvent], [DTMFSender],
//     [DTMFReceiver]).
//   - Signal generators ([Sine], [DTMFTones], [Silence], [Prompt]) and an
//     [Analyzer] that reports level, presence of audio, dominant frequency and
//     in-band DTMF digits as a JSON-ready [Snapshot].
//   - [JitterBuffer]: receive-side reordering with a fixed playout depth.
//
// Codec objects are not safe for concurrent use: one call, one goroutine per
// direction. The Analyzer and the JitterBuffer lock internally because they
// sit between a network reader and a ticker or an HTTP handler.
//
// Levels are in dBFS relative to a full-scale square wave (RMS 32768), so a
// full-scale sine reads -3 dBFS; the generators use the same definition, so
// a tone generated at L dBFS is analysed as L dBFS.
package media
