package graphfake

// Placeholders until mail.go exists (the outlook work replaces this file).
type mailStore struct{}

func (f *Fake) initMail() {}
