# Wall time per stage, printed when the recipe ends (sourced by every recipe script).
#
#   . "$recipe_dir/../stage_times.sh"
#   stage_begin 2 "train with $config"   # logs the line, ends the previous stage's clock
#
# On exit (also on failure) the script prints one line per stage run and the total:
#   stage  2  train with conf/an4.yaml ...   612 s

_stage_names=()
_stage_seconds=()
_stage_started=

_stage_end() {
  [ -n "$_stage_started" ] && _stage_seconds+=($((SECONDS - _stage_started)))
  _stage_started=
}

stage_begin() {  # N DESCRIPTION
  _stage_end
  echo "$(date '+%Y-%m-%d %H:%M:%S') Stage $1: $2"
  _stage_names+=("$(printf 'stage %2d  %s' "$1" "$2")")
  _stage_started=$SECONDS
}

_stage_report() {
  local status=$? i total=0
  _stage_end
  [ ${#_stage_names[@]} -gt 0 ] || return $status
  echo "Wall time per stage:"
  for i in "${!_stage_names[@]}"; do
    printf '  %-70.70s %6d s\n' "${_stage_names[i]}" "${_stage_seconds[i]}"
    total=$((total + _stage_seconds[i]))
  done
  printf '  %-70s %6d s (%d min %02d s)\n' "all stages" "$total" $((total / 60)) $((total % 60))
  return $status
}
trap _stage_report EXIT
