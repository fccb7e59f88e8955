package media

import (
	"fmt"

	"github.com/thesyncim/gopus"
)

// OpusConfig tunes the Opus encoder of one call. The zero value means the defaults.
type OpusConfig struct {
	// Complexity is the encoder's CPU/quality trade-off, 1..10. Default 1:
	// the audio comes from or goes to a G.711 leg (narrowband, 8-bit
	// companded), and what complexities above 1 add at narrowband (SILK's
	// delayed-decision quantiser, warped noise shaping, longer analysis
	// filters) costs about 40% more transcoding CPU per call for a gain the
	// G.711 leg cannot carry (see BenchmarkTranscodeComplexity).
	Complexity int
	// Bitrate is the target in bits per second. Default 20000.
	Bitrate int
	// FEC enables in-band forward error correction (LBRR). Default false.
	FEC bool
	// PacketLossPercent is the expected loss the FEC is sized for, 0..100. Default 0.
	PacketLossPercent int
	// DTX enables discontinuous transmission during silence. Default false,
	// because a steady 50 packets/s keeps NAT bindings and jitter buffers simple.
	DTX bool
}

const (
	defaultOpusComplexity = 1
	defaultOpusBitrate    = 20000
)

func (c OpusConfig) withDefaults() OpusConfig {
	if c.Complexity == 0 {
		c.Complexity = defaultOpusComplexity
	}
	if c.Bitrate == 0 {
		c.Bitrate = defaultOpusBitrate
	}
	return c
}

// OpusEncoder encodes 20 ms frames of 8 kHz mono PCM into Opus packets.
// Running Opus at 8 kHz (narrowband) skips the 48 kHz resampler: the G.711 leg
// cannot carry more than 4 kHz of audio anyway.
type OpusEncoder struct {
	enc *gopus.Encoder
}

// NewOpusEncoder returns an encoder tuned for speech (VoIP application, mono, 8 kHz).
func NewOpusEncoder(cfg OpusConfig) (*OpusEncoder, error) {
	cfg = cfg.withDefaults()
	enc, err := gopus.NewEncoder(gopus.EncoderConfig{
		SampleRate:  SampleRate,
		Channels:    1,
		Application: gopus.ApplicationVoIP,
	})
	if err != nil {
		return nil, fmt.Errorf("new opus encoder: %w", err)
	}
	if err := enc.SetFrameSize(FrameSamples); err != nil {
		return nil, fmt.Errorf("opus frame size %d: %w", FrameSamples, err)
	}
	if err := enc.SetComplexity(cfg.Complexity); err != nil {
		return nil, fmt.Errorf("opus complexity %d: %w", cfg.Complexity, err)
	}
	if err := enc.SetBitrate(cfg.Bitrate); err != nil {
		return nil, fmt.Errorf("opus bitrate %d: %w", cfg.Bitrate, err)
	}
	if err := enc.SetSignal(gopus.SignalVoice); err != nil {
		return nil, fmt.Errorf("opus signal: %w", err)
	}
	enc.SetFEC(cfg.FEC)
	if err := enc.SetPacketLoss(cfg.PacketLossPercent); err != nil {
		return nil, fmt.Errorf("opus packet loss %d: %w", cfg.PacketLossPercent, err)
	}
	enc.SetDTX(cfg.DTX)
	return &OpusEncoder{enc: enc}, nil
}

// Encode writes the Opus packet for one 160-sample frame into dst and returns
// it. dst should have MaxOpusPacket capacity; the packet is allocation-free.
func (e *OpusEncoder) Encode(pcm []int16, dst []byte) ([]byte, error) {
	if len(pcm) != FrameSamples {
		return nil, fmt.Errorf("opus encode %d samples: %w", len(pcm), ErrFrameSize)
	}
	if cap(dst) < MaxOpusPacket {
		dst = make([]byte, MaxOpusPacket)
	}
	n, err := e.enc.EncodeInt16(pcm, dst[:cap(dst)])
	if err != nil {
		return nil, fmt.Errorf("opus encode: %w", err)
	}
	return dst[:n], nil
}

// OpusDecoder decodes Opus packets (any mode or bandwidth the browser sends)
// into 8 kHz mono PCM.
type OpusDecoder struct {
	dec *gopus.Decoder
}

// NewOpusDecoder returns a mono decoder whose output is 8 kHz.
func NewOpusDecoder() (*OpusDecoder, error) {
	dec, err := gopus.NewDecoder(gopus.DefaultDecoderConfig(SampleRate, 1))
	if err != nil {
		return nil, fmt.Errorf("new opus decoder: %w", err)
	}
	return &OpusDecoder{dec: dec}, nil
}

// Decode writes the samples of one packet into dst and returns them: 160 for
// a 20 ms packet, up to MaxOpusFrameSamples for 120 ms. A nil or empty packet
// runs the decoder's packet-loss concealment for one 20 ms frame.
func (d *OpusDecoder) Decode(packet []byte, dst []int16) ([]int16, error) {
	if len(packet) == 0 {
		return d.Conceal(dst)
	}
	if cap(dst) < MaxOpusFrameSamples {
		dst = make([]int16, MaxOpusFrameSamples)
	}
	n, err := d.dec.DecodeInt16(packet, dst[:MaxOpusFrameSamples])
	if err != nil {
		return nil, fmt.Errorf("opus decode %d bytes: %w", len(packet), err)
	}
	return dst[:n], nil
}

// Conceal synthesises one 20 ms frame in place of a lost packet (Opus PLC:
// the decoder extrapolates from its state and fades out over repeated losses).
func (d *OpusDecoder) Conceal(dst []int16) ([]int16, error) {
	if cap(dst) < FrameSamples {
		dst = make([]int16, FrameSamples)
	}
	// gopus sizes the concealed frame from the buffer length.
	n, err := d.dec.DecodeInt16(nil, dst[:FrameSamples])
	if err != nil {
		return nil, fmt.Errorf("opus conceal: %w", err)
	}
	return dst[:n], nil
}

// DecodeFEC recovers the frame before packet from packet's in-band FEC data,
// for when the previous packet was lost and this one has arrived; without
// FEC data it falls back to concealment.
func (d *OpusDecoder) DecodeFEC(packet []byte, dst []int16) ([]int16, error) {
	if cap(dst) < FrameSamples {
		dst = make([]int16, FrameSamples)
	}
	// DecodeWithFEC works on float32; this path is rare (loss only), so the
	// conversion buffer is a small stack array.
	var f [FrameSamples]float32
	n, err := d.dec.DecodeWithFEC(packet, f[:], true)
	if err != nil {
		return nil, fmt.Errorf("opus decode fec: %w", err)
	}
	out := dst[:n]
	for i := range out {
		out[i] = floatToInt16(f[i])
	}
	return out, nil
}

func floatToInt16(v float32) int16 {
	s := v * 32768
	switch {
	case s >= 32767:
		return 32767
	case s <= -32768:
		return -32768
	case s >= 0:
		return int16(s + 0.5)
	default:
		return int16(s - 0.5)
	}
}
