package media

import "fmt"

// Transcoder converts one call's audio between the browser leg (Opus, RTP
// clock 48000) and the SIP leg (G.711, RTP clock 8000). Each direction keeps
// its own codec state and scratch buffer, so one goroutine may run
// OpusToG711 while another runs G711ToOpus; a single direction is not safe
// for concurrent use.
type Transcoder struct {
	law Law
	enc *OpusEncoder
	dec *OpusDecoder

	decPCM [MaxOpusFrameSamples]int16 // Opus -> G.711 scratch
	encPCM [FrameSamples]int16        // G.711 -> Opus scratch
}

// NewTranscoder builds the codec pair for one call whose SIP leg uses law.
func NewTranscoder(law Law, cfg OpusConfig) (*Transcoder, error) {
	if law != PCMU && law != PCMA {
		return nil, fmt.Errorf("new transcoder: unknown law %d: %w", law, ErrMalformed)
	}
	enc, err := NewOpusEncoder(cfg)
	if err != nil {
		return nil, fmt.Errorf("new transcoder: %w", err)
	}
	dec, err := NewOpusDecoder()
	if err != nil {
		return nil, fmt.Errorf("new transcoder: %w", err)
	}
	return &Transcoder{law: law, enc: enc, dec: dec}, nil
}

// Law returns the G.711 law of the SIP leg.
func (t *Transcoder) Law() Law { return t.law }

// OpusToG711 decodes one Opus payload and returns its G.711 encoding written
// into out (160 bytes per 20 ms; pass a buffer of MaxOpusFrameSamples to
// accept any packet length without allocating). An empty payload means the
// packet was lost: the Opus decoder's concealment fills the frame.
func (t *Transcoder) OpusToG711(opusPayload []byte, out []byte) ([]byte, error) {
	pcm, err := t.OpusToPCM(opusPayload)
	if err != nil {
		return nil, fmt.Errorf("opus to g711: %w", err)
	}
	return EncodeG711(t.law, pcm, out), nil
}

// OpusToPCM decodes one Opus payload (empty: conceal a lost packet) into the
// transcoder's scratch buffer and returns the 8 kHz samples, valid until the
// next OpusToPCM, OpusToG711 or ConcealToG711. Callers that also analyse the
// audio use it with EncodeG711 instead of decoding the G.711 result again.
func (t *Transcoder) OpusToPCM(opusPayload []byte) ([]int16, error) {
	return t.dec.Decode(opusPayload, t.decPCM[:])
}

// ConcealToG711 produces the G.711 frame standing in for a lost Opus packet.
func (t *Transcoder) ConcealToG711(out []byte) ([]byte, error) {
	return t.OpusToG711(nil, out)
}

// G711ToOpus encodes one 20 ms G.711 frame (exactly 160 bytes) as Opus into
// out (give it MaxOpusPacket capacity to stay allocation-free).
func (t *Transcoder) G711ToOpus(g711 []byte, out []byte) ([]byte, error) {
	if len(g711) != FrameSamples {
		return nil, fmt.Errorf("g711 to opus: %d bytes: %w", len(g711), ErrFrameSize)
	}
	pcm := DecodeG711(t.law, g711, t.encPCM[:])
	pkt, err := t.enc.Encode(pcm, out)
	if err != nil {
		return nil, fmt.Errorf("g711 to opus: %w", err)
	}
	return pkt, nil
}

// PCMToOpus encodes one 20 ms frame of 8 kHz samples (exactly 160) as Opus
// into out, for callers that decoded the G.711 frame themselves (to analyse
// it) and should not pay for a second decode.
func (t *Transcoder) PCMToOpus(pcm []int16, out []byte) ([]byte, error) {
	pkt, err := t.enc.Encode(pcm, out)
	if err != nil {
		return nil, fmt.Errorf("pcm to opus: %w", err)
	}
	return pkt, nil
}

// SilenceToOpus encodes 20 ms of silence, for when the SIP leg's packet is
// missing and the browser leg still wants a steady 50 packets per second.
func (t *Transcoder) SilenceToOpus(out []byte) ([]byte, error) {
	clear(t.encPCM[:])
	pkt, err := t.enc.Encode(t.encPCM[:], out)
	if err != nil {
		return nil, fmt.Errorf("silence to opus: %w", err)
	}
	return pkt, nil
}
