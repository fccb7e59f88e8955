package voice

import (
	"github.com/cxlab/cxlab/mocks/voice/internal/rtpsim"
)

// parking is the media server (GVP) leg a real customer hears while a
// callback connects it to an agent: the speech-like prompt.
type parking struct {
	ep *rtpsim.Endpoint
}

func (s *Server) newParking() (*parking, error) {
	conn, err := rtpsim.Listen(s.cfg.RTPHost, s.cfg.RTPPortMin, s.cfg.RTPPortMax)
	if err != nil {
		return nil, err
	}
	return &parking{ep: rtpsim.New(conn, &rtpsim.Prompt{})}, nil
}

func (p *parking) offer() []byte { return p.ep.SDP(rtpsim.DefaultCodecs(), rtpsim.SendRecv, 1) }

func (p *parking) connect(answer []byte) {
	if m, err := rtpsim.Parse(answer); err == nil {
		_ = p.ep.SetRemote(m)
	}
}

func (p *parking) close() { p.ep.Close() }
