# bash completion for marginaudit; load it with
#   source <(marginaudit completion bash)
# It asks the program itself: `marginaudit WORDS… --generate-bash-completion`
# prints the commands or flags that may come next.
_marginaudit() {
	local cur words
	COMPREPLY=()
	cur=${COMP_WORDS[COMP_CWORD]}
	words=("${COMP_WORDS[@]:0:COMP_CWORD}")
	if [[ $cur == -* ]]; then
		words+=("$cur")
	fi
	local opts
	opts=$("${words[0]}" "${words[@]:1}" --generate-bash-completion 2>/dev/null)
	COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -o bashdefault -o default -F _marginaudit marginaudit
