package graphfake

// Placeholders until mail.go and subscriptions.go exist (the outlook work replaces this file).
type mailStore struct{}
type subStore struct{}

func (f *Fake) initMail()          {}
func (f *Fake) initSubscriptions() {}
